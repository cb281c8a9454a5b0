package kafkaio

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// javaPartition is the partition the Java client's default partitioner
// picks for key among n partitions, as franz-go implements it
// (StickyKeyPartitioner with its default KafkaHasher: murmur2, high bit
// masked, modulo n).
func javaPartition(key []byte, n int) int {
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	return tp.Partition(&kgo.Record{Key: key}, n)
}

// producerPartition is the partition the Producer's balancer picks.
func producerPartition(t *testing.T, key []byte, n int) int {
	t.Helper()
	p, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return p.writer().Balancer.Balance(kafka.Message{Key: key}, parts...)
}

func TestProducer_partitions_keys_like_the_Java_client(t *testing.T) {
	p, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	bal := p.writer().Balancer
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		var key []byte
		switch i % 4 {
		case 0:
			key = fmt.Appendf(nil, "table-%d", i)
		case 1:
			key = fmt.Appendf(nil, "db.schema.mv_%d/partition=%d", rng.IntN(1000), i)
		case 2: // random bytes, any length (tails of 0-3 bytes, high bits set)
			key = make([]byte, rng.IntN(64))
			for j := range key {
				key[j] = byte(rng.UintN(256))
			}
		case 3:
			key = []byte{} // empty, non-nil: hashed, not random
		}
		for _, n := range []int{1, 2, 3, 7, 10, 12, 64, 1000} {
			parts := make([]int, n)
			for j := range parts {
				parts[j] = j
			}
			got := bal.Balance(kafka.Message{Key: key}, parts...)
			if want := javaPartition(key, n); got != want {
				t.Fatalf("key %q over %d partitions: producer %d, Java partitioner (franz-go) %d", key, n, got, want)
			}
		}
	}
}

// Known vectors: murmur2 values from Kafka's UtilsTest.testMurmur2, turned
// into partitions the way the Java client does (toPositive(h) % n).
func TestProducer_partitions_known_murmur2_vectors(t *testing.T) {
	for _, c := range []struct {
		key  string
		hash int32 // Utils.murmur2(key.getBytes())
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		for _, n := range []int{3, 10, 100} {
			want := int(c.hash&0x7fffffff) % n
			if got := producerPartition(t, []byte(c.key), n); got != want {
				t.Errorf("key %q over %d partitions: %d, want %d", c.key, n, got, want)
			}
			if got := javaPartition([]byte(c.key), n); got != want {
				t.Errorf("franz-go: key %q over %d partitions: %d, want %d", c.key, n, got, want)
			}
		}
	}
	// One worked value: "foobar" over 10 partitions.
	if got := producerPartition(t, []byte("foobar"), 10); got != 6 {
		t.Errorf(`"foobar" over 10 partitions = %d, want 6`, got)
	}
}
