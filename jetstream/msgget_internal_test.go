package jetstream

import (
	"encoding/json"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// decodeMsgGetReply reads a message get reply exactly as encoding/json
// does, or refuses it (and the caller falls back to encoding/json).
func FuzzDecodeMsgGetReplyAgreesWithEncodingJSON(f *testing.F) {
	good, _ := json.Marshal(map[string]any{
		"type": "io.nats.jetstream.api.v1.stream_msg_get_response",
		"message": storedMsg{Subject: "a.b.$snapshot.c", Seq: 7, Header: []byte("NATS/1.0\r\nX: 1\r\n\r\n"),
			Data: []byte{0, 1, 2, '"', '\\'}, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
	})
	f.Add(good)
	f.Add([]byte(`{"type":"x","error":{"code":404,"err_code":10037,"description":"no message found"}}`))
	f.Add([]byte(`{"message":{"subject":"a\"b","seq":1,"time":"2026-01-02T03:04:05Z"}}`))
	f.Add([]byte(`{"message":{"subject":"a","seq":1,"data":"AAE=","time":"2026-01-02T03:04:05Z","x":[1,{"y":null},"z"]}} `))
	f.Add([]byte(`{"message":null}`))
	f.Add([]byte(`{"message":{"seq":-1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, apiErr, err := decodeMsgGetReply(b)
		if err != nil {
			return
		}
		var want struct {
			Error   *natsjs.APIError `json:"error,omitempty"`
			Message *storedMsg       `json:"message"`
		}
		if jerr := json.Unmarshal(b, &want); jerr != nil {
			t.Fatalf("decoded %q that encoding/json refuses: %v", b, jerr)
		}
		if (want.Message == nil) != (msg == nil) || (want.Error == nil) != (apiErr == nil) {
			t.Fatalf("%q: got message %v error %v, encoding/json %v %v", b, msg, apiErr, want.Message, want.Error)
		}
		if msg != nil {
			require.Equal(t, want.Message.Subject, msg.Subject)
			require.Equal(t, want.Message.Seq, msg.Seq)
			require.Equal(t, string(want.Message.Header), string(msg.Header))
			require.Equal(t, string(want.Message.Data), string(msg.Data))
			require.True(t, want.Message.Time.Equal(msg.Time))
		}
		if apiErr != nil {
			require.Equal(t, *want.Error, *apiErr)
		}
	})
}

func TestDecodeMsgGetReplyReadsTheServersReply(t *testing.T) {
	state := make([]byte, 64<<10)
	for i := range state {
		state[i] = byte(i)
	}
	b, _ := json.Marshal(map[string]any{"type": "t", "message": storedMsg{Subject: "s", Seq: 9, Data: state, Time: time.Unix(1, 2).UTC()}})
	msg, apiErr, err := decodeMsgGetReply(b)
	require.NoError(t, err)
	require.Nil(t, apiErr)
	require.Equal(t, state, msg.Data)
	require.EqualValues(t, 9, msg.Seq)
	_, _, err = decodeMsgGetReply([]byte(`{"message":{"subject":"s\u0041"}}`))
	require.ErrorIs(t, err, errUnexpectedReply, "escapes where a value is needed fall back")
}
