package courier

import "sync"

// interests keeps a node's broker subscriptions in step with its
// connections: a topic is subscribed while at least one local connection
// (or room member) needs it, and unsubscribed when the last one leaves.
//
// Subscribing waits for the broker, so it happens outside every hub lock;
// each topic's entry serializes its own subscribe and unsubscribe calls, and
// an entry stays in the map until its unsubscribe is done, so that a new
// subscriber can never be overtaken by an older unsubscribe.
type interests struct {
	broker Broker
	onErr  func(op, topic string, err error)

	mu     sync.Mutex
	topics map[string]*interest
	count  int // subscribed topics, for metrics and tests
}

type interest struct {
	calls      sync.Mutex // held during Subscribe and Unsubscribe calls
	refs       int        // guarded by interests.mu
	subscribed bool       // guarded by calls
}

func newInterests(b Broker, onErr func(op, topic string, err error)) *interests {
	return &interests{broker: b, onErr: onErr, topics: make(map[string]*interest)}
}

// take takes a reference on topic; the caller then calls subscribe, outside
// its locks. Taking the reference first, under the lock that registers the
// connection, keeps it ordered with the remove of a concurrent close.
func (s *interests) take(topic string) *interest {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.topics[topic]
	if e == nil {
		e = &interest{}
		s.topics[topic] = e
	}
	e.refs++
	return e
}

// subscribe returns once the node is subscribed to topic, whose entry e
// the caller took.
func (s *interests) subscribe(topic string, e *interest) {
	e.calls.Lock()
	defer e.calls.Unlock()
	if e.subscribed {
		return
	}
	// A failed Subscribe still leaves the topic registered with the broker
	// client, which restores it when its connection comes back; so the
	// entry counts as subscribed either way, and Unsubscribe runs later.
	if err := s.broker.Subscribe(topic); err != nil {
		s.onErr("subscribe", topic, err)
	}
	e.subscribed = true
	s.mu.Lock()
	s.count++
	s.mu.Unlock()
}

// remove drops a reference on topic and reports whether it was the last one;
// then the caller must call release (it may do so later, off a hot path).
func (s *interests) remove(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.topics[topic]
	if e == nil {
		return false
	}
	e.refs--
	return e.refs == 0
}

// release unsubscribes from topic unless it has been taken again since.
func (s *interests) release(topic string) {
	s.mu.Lock()
	e := s.topics[topic]
	s.mu.Unlock()
	if e == nil {
		return
	}
	e.calls.Lock()
	defer e.calls.Unlock()
	s.mu.Lock()
	idle := e.refs == 0
	s.mu.Unlock()
	if !idle {
		return
	}
	if e.subscribed {
		if err := s.broker.Unsubscribe(topic); err != nil {
			s.onErr("unsubscribe", topic, err)
		}
		e.subscribed = false
		s.mu.Lock()
		s.count--
		s.mu.Unlock()
	}
	s.mu.Lock()
	if e.refs == 0 && s.topics[topic] == e {
		delete(s.topics, topic)
	}
	s.mu.Unlock()
}

// subscribed returns how many topics the node is subscribed to.
func (s *interests) subscribed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}
