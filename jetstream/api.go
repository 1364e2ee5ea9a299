package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// Server error codes this package reacts to: nats.go's and orbit's where
// they define them, the server's (errors.json names) where they do not.
const (
	codeWrongLastSequence      = natsjs.JSErrCodeStreamWrongLastSequence         // JSStreamWrongLastSequenceErrF
	codeWrongLastSequenceConst = natsjs.JSErrCodeStreamWrongLastSequenceConstant // JSStreamWrongLastSequenceConstantErr
	codeStreamNotFound         = natsjs.JSErrCodeStreamNotFound
	codeNoMessageFound         = natsjs.JSErrCodeMessageNotFound
	codeMsgExceedsMaximum      = natsjs.JSErrCodeStreamMessageExceedsMaximum
	codeBatchTooLarge          = jetstreamext.JSErrCodeBatchPublishExceedsLimit
	codeBatchIncomplete        = jetstreamext.JSErrCodeBatchPublishIncomplete
	codeBatchDuplicate         = jetstreamext.JSErrCodeBatchPublishDuplicateMsgID
	codeBatchTooManyInflight   = jetstreamext.JSErrCodeAtomicPublishTooManyInflight

	codeAccountExceeded       natsjs.ErrorCode = 10002 // JSAccountResourcesExceededErr
	codeClusterNoPeers        natsjs.ErrorCode = 10005 // JSClusterNoPeersErrF
	codeInsufficientResources natsjs.ErrorCode = 10023 // JSInsufficientResourcesErr
	codeMaxStreams            natsjs.ErrorCode = 10027 // JSMaximumStreamsLimitErr
	codeMemoryExceeded        natsjs.ErrorCode = 10028 // JSMemoryResourcesExceededErr
	codeStorageExceeded       natsjs.ErrorCode = 10047 // JSStorageResourcesExceededErr
	codeWrongLastMsgID        natsjs.ErrorCode = 10070 // JSStreamWrongLastMsgIDErrF
	codeStoreFailed           natsjs.ErrorCode = 10077 // JSStreamStoreFailedF
	codeHeaderExceedsMaximum  natsjs.ErrorCode = 10097 // JSStreamHeaderExceedsMaximumErr
	codeDuplicateInProcess    natsjs.ErrorCode = 10158 // JSStreamDuplicateMessageConflict
	codeTTLInvalid            natsjs.ErrorCode = 10165 // JSMessageTTLInvalidErr
	codeTTLDisabled           natsjs.ErrorCode = 10166 // JSMessageTTLDisabledErr
)

// errCode returns the JetStream error code carried by err, or 0.
func errCode(err error) natsjs.ErrorCode {
	var ae *natsjs.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode
	}
	return 0
}

// apiStatus returns the HTTP-like status of a JetStream API error in err,
// or 0.
func apiStatus(err error) int {
	var ae *natsjs.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// The JetStream API subjects this package uses, under the Log's prefix
// (WithAPIPrefix), and the server's own subjects it meets.
func (l *Log) apiSubject(parts ...string) string {
	return l.cfg.apiPrefix + "." + strings.Join(parts, ".")
}

const (
	apiStreamInfo     = "STREAM.INFO"
	apiStreamList     = "STREAM.LIST"
	apiStreamCreate   = "STREAM.CREATE"
	apiStreamDelete   = "STREAM.DELETE"
	apiStreamPurge    = "STREAM.PURGE"
	apiStreamMsgGet   = "STREAM.MSG.GET"
	apiDirectGet      = "DIRECT.GET"
	apiConsumerCreate = "CONSUMER.CREATE"
	apiConsumerDelete = "CONSUMER.DELETE"
	apiConsumers      = "CONSUMER"

	// ackPrefix starts the reply subject of every message a consumer
	// delivers; flowControlPrefix the reply of its flow-control requests.
	ackPrefix         = "$JS.ACK."
	flowControlPrefix = "$JS.FC."
	// streamCreatedAdvisory is followed by the name of a created stream.
	streamCreatedAdvisory = "$JS.EVENT.ADVISORY.STREAM.CREATED."
)

type pubAck struct {
	Stream    string           `json:"stream"`
	Seq       uint64           `json:"seq"`
	Duplicate bool             `json:"duplicate,omitempty"`
	Batch     string           `json:"batch,omitempty"`
	BatchSize uint64           `json:"count,omitempty"`
	Error     *natsjs.APIError `json:"error,omitempty"`
}

// storedMsg is a message as the leader-served MSG.GET returns it (nats.go
// keeps its own type unexported, and its Stream.GetMsg uses direct gets
// where a stream allows them, which are neither read-your-writes nor free
// of stored headers).
type storedMsg struct {
	Subject string    `json:"subject"`
	Seq     uint64    `json:"seq"`
	Header  []byte    `json:"hdrs,omitempty"`
	Data    []byte    `json:"data,omitempty"`
	Time    time.Time `json:"time"`
}

// streamInfoRequest asks STREAM.INFO for per-subject counts.
type streamInfoRequest struct {
	SubjectsFilter string `json:"subjects_filter,omitempty"`
	Offset         int    `json:"offset,omitempty"`
}

// streamListRequest pages through STREAM.LIST, filtered by subject.
type streamListRequest struct {
	Offset  int    `json:"offset"`
	Subject string `json:"subject,omitempty"`
}

// msgGetRequest is a MSG.GET or DIRECT.GET request (JSApiMsgGetRequest).
type msgGetRequest struct {
	Seq      uint64   `json:"seq,omitempty"`
	LastFor  string   `json:"last_by_subj,omitempty"`
	NextFor  string   `json:"next_by_subj,omitempty"`
	Batch    int      `json:"batch,omitempty"`
	MaxBytes int      `json:"max_bytes,omitempty"`
	MultiFor []string `json:"multi_last,omitempty"`
	UpToSeq  uint64   `json:"up_to_seq,omitempty"`
}

// withTimeout bounds ctx by the request timeout unless it ends sooner.
func (l *Log) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= l.cfg.requestTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, l.cfg.requestTimeout)
}

// apiRequest sends a JSON request to the JetStream API subject (without
// the prefix) and decodes the reply into resp. An API error reply is
// returned as a *natsjs.APIError, wrapped with the subject.
func (l *Log) apiRequest(ctx context.Context, subject string, req, resp any) error {
	var body []byte
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return err
		}
	}
	ctx, cancel := l.withTimeout(ctx)
	defer cancel()
	full := l.apiSubject(subject)
	gctx, check := l.guard(ctx, full)
	msg, err := l.nc.RequestWithContext(gctx, full, body)
	if err = check(err); err != nil {
		return err
	}
	var envelope struct {
		Error *natsjs.APIError `json:"error,omitempty"`
	}
	if err := json.Unmarshal(msg.Data, &envelope); err != nil {
		return fmt.Errorf("decoding JetStream API reply to %s: %w", subject, err)
	}
	if envelope.Error != nil {
		return fmt.Errorf("JetStream API %s: %w", subject, envelope.Error)
	}
	if resp != nil {
		if err := json.Unmarshal(msg.Data, resp); err != nil {
			return fmt.Errorf("decoding JetStream API reply to %s: %w", subject, err)
		}
	}
	return nil
}

// leaderGet reads one message through the stream leader (not a direct get),
// which always reflects every acknowledged write. It returns nil, nil when
// no message matches or the stream does not exist.
func (l *Log) leaderGet(ctx context.Context, stream string, req msgGetRequest) (*storedMsg, error) {
	var resp struct {
		Message *storedMsg `json:"message"`
	}
	err := l.apiRequest(ctx, apiStreamMsgGet+"."+stream, req, &resp)
	switch errCode(err) {
	case 0:
	case codeNoMessageFound, codeStreamNotFound:
		return nil, nil
	default:
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if resp.Message == nil {
		return nil, fmt.Errorf("JetStream API: empty message in reply from stream %s", stream)
	}
	return resp.Message, nil
}

// purge removes the subject's messages with sequence below before (all of
// them when before is 0) and returns how many the server removed.
func (l *Log) purge(ctx context.Context, stream, subject string, before uint64) (uint64, error) {
	req := struct {
		Filter string `json:"filter"`
		Seq    uint64 `json:"seq,omitempty"`
	}{subject, before}
	var resp struct {
		Success bool   `json:"success"`
		Purged  uint64 `json:"purged"`
	}
	if err := l.apiRequest(ctx, apiStreamPurge+"."+stream, req, &resp); err != nil {
		return 0, err
	}
	if !resp.Success {
		return 0, fmt.Errorf("purge of %s in stream %s was not successful", subject, stream)
	}
	return resp.Purged, nil
}

// publish sends one message and waits for its acknowledgement. It is the
// hot path of Append, so it is not guarded (a guard costs about 1.5 us, 8% of
// a publish): a refused publish is recognised when it times out.
// publishToStream publishes msg, a message of stream. A stream just
// created, or between leaders, is not served on every node at once: while
// it exists and nobody answers, the message (which nothing stored) is sent
// again, a few times with a quick backoff. It returns nats.ErrNoResponders
// when the stream does not exist.
func (l *Log) publishToStream(ctx context.Context, stream string, msg *nats.Msg) (*pubAck, error) {
	backoff := newBackoff()
	for attempt := 1; ; attempt++ {
		ack, err := l.publish(ctx, msg)
		if !errors.Is(err, nats.ErrNoResponders) {
			return ack, err
		}
		if _, exists, serr := l.quickStreamState(ctx, stream); serr == nil && !exists {
			return nil, err
		}
		if attempt == publishAttempts || backoff.wait(ctx) != nil {
			return nil, err
		}
	}
}

// publishAttempts bounds publishToStream's attempts (with newBackoff,
// about a second in all).
const publishAttempts = 15

func (l *Log) publish(ctx context.Context, msg *nats.Msg) (*pubAck, error) {
	ctx, cancel := l.withTimeout(ctx)
	defer cancel()
	reply, err := l.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return nil, l.denied(err, msg.Subject)
	}
	var ack pubAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return nil, fmt.Errorf("decoding publish acknowledgement: %w", err)
	}
	if ack.Error != nil {
		return nil, ack.Error
	}
	if ack.Seq == 0 {
		return nil, errors.New("publish acknowledgement without a sequence")
	}
	return &ack, nil
}
