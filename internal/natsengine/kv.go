package natsengine

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// openKV creates the key-value bucket cfg describes, or updates it to cfg.
// Each attempt has a short deadline and is retried while ctx lasts: of
// several nodes creating one bucket at once on a new cluster, some
// requests were seen to go unanswered.
func openKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		kv, err := js.CreateOrUpdateKeyValue(actx, cfg)
		cancel()
		if err == nil {
			return kv, nil
		}
		if ctx.Err() != nil || Backoff(ctx, attempt) != nil {
			return nil, err
		}
	}
}

// kvConflict reports whether err is a key-value Create or Update refused
// because the key's revision changed meanwhile. A clustered server reports
// some of those with an error code nats.go does not turn into
// jetstream.ErrKeyExists.
func kvConflict(err error) bool {
	var ae *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &ae) &&
		(ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
