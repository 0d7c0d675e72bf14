package courier

// A Conversation is a user's exchange with one peer, as it stands in the
// user's inbox: the peer is the other side of each message (its sender for
// a message received, its recipient for one sent; a server API label counts
// as a peer).
type Conversation struct {
	With   string  // the peer
	Last   Message // the newest message, Seq in the user's inbox
	Unread int     // messages received from the peer after the user's read mark
}

// A ReadMark is what Store.MarkRead did.
type ReadMark struct {
	// Msg is the id of the newest message from the peer at or before the
	// marked seq; empty when there is none.
	Msg string
	// Moved is set when the mark advanced; marking an older seq than the
	// one stored changes nothing.
	Moved bool
	// Delivered are the messages from the peer that the mark passed and
	// that had not been marked delivered, in seq order: a message read was
	// delivered, so MarkRead marks them, each once across every node as
	// MarkDelivered would. It covers a message read from history on a
	// device it was never pushed to, and a node that died before it
	// recorded its delivered marks.
	Delivered []FirstDelivery
}

// A FirstDelivery is a stored direct message that reached a connection of
// its recipient for the first time.
type FirstDelivery struct {
	ID   string // message id
	From string // sender, whose connections get a delivered receipt
	To   string // recipient
}
