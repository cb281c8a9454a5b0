package kafkaio

import "encoding/binary"

// recordBatchOverhead is the size of a record batch's header (magic v2):
// what a batch of one record adds to the record itself.
const recordBatchOverhead = 61

// RecordSize returns the bytes m takes on the wire as the only record of a
// record batch: what a broker compares with a topic's max.message.bytes
// (uncompressed). Callers check sizes with it before they publish.
func RecordSize(m Message) int {
	body := 1 + // attributes
		varintLen(0) + // timestamp delta
		varintLen(0) + // offset delta
		bytesLen(m.Key) + bytesLen(m.Value) +
		varintLen(int64(len(m.Headers)))
	for _, h := range m.Headers {
		body += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	return recordBatchOverhead + varintLen(int64(body)) + body
}

func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}

// bytesLen is the size of a length-prefixed (nullable) byte field.
func bytesLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}
