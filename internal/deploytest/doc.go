// Package deploytest holds tests that keep the deployment files true to the
// code: docker-compose.yml and its secured override docker-compose.sasl.yml
// (checked merged, as Compose merges them), the Dockerfile, .dockerignore and
// the scripts under deploy/ (topic-init, the broker's SASL entrypoint, the
// certificate generator gen-certs.sh) (docs/design.md §6–§7).
//
// No container runtime is needed. The tests parse the files and check them
// against internal/config (every MVREPAIR_* variable is a real key with a
// valid value, and every file a setting names is mounted into the container;
// the secured stack's files come from a fresh gen-certs.sh run) and
// internal/service (topic-init creates exactly the topics
// service.TopicSpecs describes, run against a stub kafka-topics.sh), and,
// unless -short, build the consumer with the Dockerfile's own go build flags.
//
// The monitoring files are checked too: the Prometheus alert rules
// (deploy/prometheus/alerts.yml) and the Grafana dashboard
// (deploy/grafana/mvrepair.json) may use only the mvrepair_* series and
// labels internal/metrics registers (metrics.Families), the dashboard shows
// every one of them through a datasource variable, and every alert has a
// severity, a summary, a description and a runbook section of the README.
// Where promtool is installed, the rules pass `promtool check rules` and
// their unit tests (deploy/prometheus/alerts_test.yml), and promtool parses
// every dashboard query; elsewhere those tests are skipped.
package deploytest
