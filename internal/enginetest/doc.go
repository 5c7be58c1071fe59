// Package enginetest is the conformance suite every engine.Broker
// implementation runs. An implementation's test file hands RunBroker an
// Opener that returns a started broker delivering to a given handler (and
// closes it through t.Cleanup), plus optionally, with WithPair, a way to open
// two brokers on one shared backend; RunBroker then checks delivery to
// watched topics and silence on unwatched ones, reference-counted interest,
// that topics of every kind and awkward name are distinct and round-trip,
// per-topic order, byte-exact payloads up to 1 MiB, safe concurrent use,
// cross-broker delivery and Ready. The suite waits on channels with
// deadlines and makes no timing assertions; absence of a delivery is proven
// by publishing sentinels to watched topics afterwards and relying on
// per-topic order on one broker.
package enginetest
