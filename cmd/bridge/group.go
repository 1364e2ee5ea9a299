package main

import (
	"errors"
	"fmt"
	"log/slog"
)

// group runs the daemon's parts (actors) together, after oklog/run: the
// first to return, with an error or not, stops the others, which are
// interrupted one at a time in reverse order of start, each waited for
// before the next is interrupted, so that what started last drains first.
// No error is lost: run returns the first actor's error joined with any
// other actor's.
type group struct {
	logger *slog.Logger
	actors []actor
}

type actor struct {
	name      string
	run       func() error
	interrupt func()
}

// add appends an actor: run does its work until interrupt makes it
// return; it returns nil when it stopped because it was interrupted.
func (g *group) add(name string, run func() error, interrupt func()) {
	g.actors = append(g.actors, actor{name: name, run: run, interrupt: interrupt})
}

// hold appends a resource that is already open, so that it is closed in
// its place in the reverse order of start; closer's error is kept.
func (g *group) hold(name string, closer func() error) {
	stop := make(chan struct{})
	g.add(name, func() error {
		<-stop
		return closer()
	}, func() { close(stop) })
}

type exit struct {
	i   int
	err error
}

// run starts every actor and returns when all have returned.
func (g *group) run() error {
	if len(g.actors) == 0 {
		return nil
	}
	exits := make(chan exit, len(g.actors))
	for i, a := range g.actors {
		go func() { exits <- exit{i, a.run()} }()
	}
	done := make([]bool, len(g.actors))
	errs := make([]error, len(g.actors))
	first := <-exits
	done[first.i], errs[first.i] = true, first.err
	cause := g.actors[first.i].name
	if first.err != nil {
		g.logger.Error("shutting down", "because", cause, "err", first.err)
	} else {
		g.logger.Info("shutting down", "because", cause)
	}
	for i := len(g.actors) - 1; i >= 0; i-- {
		if done[i] {
			continue
		}
		g.actors[i].interrupt()
		// Wait for this one; others may end on their own meanwhile.
		for !done[i] {
			e := <-exits
			done[e.i], errs[e.i] = true, e.err
		}
		g.logger.Info("stopped", "part", g.actors[i].name)
	}
	var all []error
	if first.err != nil {
		all = append(all, fmt.Errorf("%s: %w", cause, first.err))
	}
	for i, err := range errs {
		if err != nil && i != first.i {
			all = append(all, fmt.Errorf("%s: %w", g.actors[i].name, err))
		}
	}
	return errors.Join(all...)
}

// abort stops, in reverse order, the actors added so far, when the daemon
// fails before its group could run. Their errors are dropped: the failure
// that made it abort is what is reported.
func (g *group) abort() {
	g.add("failed start", func() error { return nil }, func() {})
	quiet := *g
	quiet.logger = slog.New(slog.DiscardHandler)
	quiet.run()
}
