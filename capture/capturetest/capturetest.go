// Package capturetest helps test capture sources.
package capturetest

import "github.com/knock-go/knock/capture"

// Flatten passes the events of the batches from in on to out one by one,
// releasing each batch, until in is closed.
func Flatten(in <-chan *capture.Batch, out chan<- capture.Event) {
	for b := range in {
		for _, ev := range b.Events {
			out <- ev
		}
		b.Release()
	}
}
