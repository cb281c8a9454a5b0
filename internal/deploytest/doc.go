// Package deploytest holds tests that keep the deployment files true to the
// code: docker-compose.yml, the Dockerfile, .dockerignore and the topic-init
// script under deploy/ (DESIGN.md §6–§7).
//
// No container runtime is needed. The tests parse the files and check them
// against internal/config (every MVREPAIR_* variable is a real key with a
// valid value) and internal/service (topic-init creates exactly the topics
// service.TopicSpecs describes, run against a stub kafka-topics.sh), and,
// unless -short, build the consumer with the Dockerfile's own go build flags.
package deploytest
