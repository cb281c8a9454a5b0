//go:build !unix

package loadgen

import "time"

func processCPU() time.Duration { return 0 }

func loadAvg() string { return "" }
