package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// MaxRequest bounds a request's size: a request is a few dozen bytes, and
// nothing a peer sends can make the daemon hold more.
const MaxRequest = 4096

// MaxResponse bounds what a client reads back.
const MaxResponse = 64 << 20

// Commands a Request may carry.
const (
	CmdStatus = "status"
	CmdRevoke = "revoke"
)

// A Request is what a client asks, as one JSON object.
type Request struct {
	Cmd  string `json:"cmd"`            // CmdStatus or CmdRevoke
	Src  string `json:"src,omitempty"`  // the knocker to revoke; valid iff Cmd == CmdRevoke
	Door string `json:"door,omitempty"` // the door to revoke on; empty means every door
}

// A Response is the daemon's answer, as one JSON object.
type Response struct {
	// Error says why the request was not served; empty on success.
	Error string `json:"error,omitempty"`
	// Status answers CmdStatus.
	Status *Status `json:"status,omitempty"`
	// Revoked lists the openings CmdRevoke closed; empty when there was
	// nothing to revoke.
	Revoked []Opening `json:"revoked,omitempty"`
}

// Status is what the daemon reports on CmdStatus.
type Status struct {
	PID      int       `json:"pid"`
	Config   string    `json:"config"`  // the configuration file
	Socket   string    `json:"socket"`  // this control socket
	Backend  string    `json:"backend"` // "raw", "listener", or a test's
	Started  time.Time `json:"started"`
	Now      time.Time `json:"now"`
	Doors    []Door    `json:"doors"`
	Openings []Opening `json:"openings"` // soonest to close first
	Attempts Attempts  `json:"attempts"`
	Counters Counters  `json:"counters"`
}

// Door is one door as configured, with its counters.
type Door struct {
	Name string `json:"name"`
	// Kind is "sequence" or "one-time".
	Kind string `json:"kind"`
	// Sequence is the sequence now in force, in knockd.conf's form;
	// empty for a one-time door whose sequences ran out.
	Sequence   string `json:"sequence"`
	SeqTimeout int64  `json:"seq_timeout"` // seconds
	CmdTimeout int64  `json:"cmd_timeout"` // seconds
	// Opens lists how the door opens: "commands", "nft set ...",
	// "ipset ...".
	Opens    []string `json:"opens"`
	Stages   uint64   `json:"stages"`   // knocks that started or advanced an attempt (the Stage N lines)
	Openings uint64   `json:"openings"` // OPEN SESAMEs
	Timeouts uint64   `json:"timeouts"` // attempts that timed out
}

// An Opening is a knocker a door lets in until a time.
type Opening struct {
	Door  string    `json:"door"`
	Src   string    `json:"src"`
	Label string    `json:"label,omitempty"` // how log lines name the knocker, when not Src
	Since time.Time `json:"since,omitzero"`  // the OPEN SESAME; zero when unknown (a record of an earlier version)
	Until time.Time `json:"until"`
	// Close says how it will close: "stop command: CMD" or the kernel
	// set that drops it ("nft set inet knockd ssh4", "ipset knock4").
	Close string `json:"close"`
	// Waiting is true while the start command waits for a slot.
	Waiting bool `json:"waiting,omitempty"`
}

// Attempts are the attempts in progress.
type Attempts struct {
	InProgress int       `json:"in_progress"`
	Max        int       `json:"max"`  // MaxAttempts in force
	List       []Attempt `json:"list"` // the first ones to time out, at most ListMax
}

// ListMax bounds Attempts.List: under a flood there are hundreds of
// thousands.
const ListMax = 100

// An Attempt is a knocker part of the way through a door's sequence.
type Attempt struct {
	Door  string    `json:"door"`
	Src   string    `json:"src"`
	Stage int       `json:"stage"`
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// Counters are the daemon's counters since it started.
type Counters struct {
	PacketsSeen      uint64 `json:"packets_seen"`    // packets and connections the capture read
	PacketsDropped   uint64 `json:"packets_dropped"` // knocks lost by the kernel or the capture
	PacketsMalformed uint64 `json:"packets_malformed"`
	PacketsIgnored   uint64 `json:"packets_ignored"` // no door wants them
	Stages           uint64 `json:"stages"`
	Openings         uint64 `json:"openings"`
	Timeouts         uint64 `json:"timeouts"`
	Evictions        uint64 `json:"evictions"`        // attempts pushed out to make room
	RefusedAttempts  uint64 `json:"refused_attempts"` // new attempts refused: the state was full
	CommandsStarted  uint64 `json:"commands_started"`
	CommandsFailed   uint64 `json:"commands_failed"`  // could not start, or exited non-zero
	CommandsRefused  uint64 `json:"commands_refused"` // start commands refused: their door's queue was full
	CommandsKilled   uint64 `json:"commands_killed"`  // ran past CommandLimit
	CommandsDropped  uint64 `json:"commands_dropped"` // start commands not run: shutting down
	CommandsRunning  int64  `json:"commands_running"`
	CommandsWaiting  int64  `json:"commands_waiting"`
	SetDropped       uint64 `json:"set_additions_dropped"` // kernel-set additions not made: queue full
}

// DecodeRequest reads one request of at most MaxRequest bytes. It never
// panics: anything but one JSON object with a known command is an error.
func DecodeRequest(r io.Reader) (Request, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRequest+1))
	if err != nil {
		return Request{}, fmt.Errorf("reading the request: %w", err)
	}
	if len(data) > MaxRequest {
		return Request{}, fmt.Errorf("request longer than %d bytes", MaxRequest)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("the request is not a JSON object of this protocol: %w", err)
	}
	if dec.More() {
		return Request{}, errors.New("more than one request")
	}
	switch req.Cmd {
	case CmdStatus:
		if req.Src != "" || req.Door != "" {
			return Request{}, errors.New("status takes no src or door")
		}
	case CmdRevoke:
		if _, err := netip.ParseAddr(req.Src); err != nil {
			return Request{}, fmt.Errorf("revoke: %q is not an IP address", req.Src)
		}
	default:
		return Request{}, fmt.Errorf("unknown command %q: the commands are %s and %s", req.Cmd, CmdStatus, CmdRevoke)
	}
	return req, nil
}
