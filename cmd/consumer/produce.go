package main

import (
	"bufio"
	"bytes"
	"fmt"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/service"
)

// brokersOf returns where clients connect: the configured brokers, or the
// embedded broker's address (a running `consumer run` serves it).
func brokersOf(cfg *config.Config) []string {
	if cfg.Embedded() {
		return []string{cfg.Kafka.EmbeddedAddr}
	}
	return cfg.BrokerList()
}

func newProduceCmd(g *globals) *cobra.Command {
	var topic, file string
	cmd := &cobra.Command{
		Use:   "produce --file events.ndjson [--topic T]",
		Short: "Publish events (one JSON document per line) keyed as docs/design.md §4 says",
		Long: `Publish events from an NDJSON file ("-" for stdin), one event per line.
Each record is keyed as the contract says (<db_id>:<table_id>, <catalog>.<db>.<table>,
<db_id>:<mv_id>). Without --topic, input kinds go to kafka.topics.input and catalog
kinds to kafka.topics.catalog. Lines that do not decode are sent as they are, with an
empty key, to --topic or the input topic (useful to test the dead-letter path).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			msgs, err := readEvents(cmd, cfg, topic, file)
			if err != nil {
				return err
			}
			p, err := kafkaio.NewProducer(service.ProducerConfig(cfg, brokersOf(cfg), zerolog.Nop()))
			if err != nil {
				return err
			}
			defer p.Close(cmd.Context())
			for len(msgs) > 0 {
				n := min(len(msgs), 1000)
				if err := p.Publish(cmd.Context(), msgs[:n]...); err != nil {
					return err
				}
				msgs = msgs[n:]
				fmt.Fprintf(cmd.OutOrStdout(), "published %d records\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic to publish to (default: by event kind)")
	cmd.Flags().StringVar(&file, "file", "-", "NDJSON file of events, - for stdin")
	return cmd
}

// readEvents reads the NDJSON events of file ("-": stdin) as messages keyed
// as the contract says, to topic or, when topic is "", to the topic of
// their kind. A line that does not decode is sent as it is, with no key
// (and said so on stderr); blank lines and # comments are passed over.
func readEvents(cmd *cobra.Command, cfg *config.Config, topic, file string) ([]kafkaio.Message, error) {
	r, closeInput, err := openInput(cmd, file)
	if err != nil {
		return nil, err
	}
	defer closeInput()
	var msgs []kafkaio.Message
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		v := bytes.TrimSpace(sc.Bytes())
		if len(v) == 0 || v[0] == '#' {
			continue
		}
		m := kafkaio.Message{Topic: topic, Value: append([]byte(nil), v...)}
		if e, err := events.Decode(v); err == nil {
			m.Key = []byte(events.Key(e))
			if topic == "" {
				m.Topic = cfg.Kafka.Topics.Input
				if events.TopicRoleOf(e.Kind()) == "catalog" {
					m.Topic = cfg.Kafka.Topics.Catalog
				}
			}
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "line %d: %v (sent as is)\n", line, err)
			if topic == "" {
				m.Topic = cfg.Kafka.Topics.Input
			}
		}
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return msgs, nil
}
