package subjects

import "strings"

// Snapshots live beside a tenant's events, in a stream of their own (one
// per tenant, holding the last message of each subject):
//
//	stream name: jetsession-_s-<tenant name token>
//	subject:     jetsession.<tenant token>.$snapshot.<thread token>
//	filter:      jetsession.<tenant token>.$snapshot.*
//
// No tenant's stream has a snapshot stream's name: after the stream
// prefix a tenant name token holds only a-z, 0-9, '-' and '_' followed by
// two lowercase hex digits, and "_s" is no escape; nor the system stream's
// ("_system"), whose third byte is not '-'. The names hold no upper-case
// letters, so they stay distinct where stream folders ignore case. A
// snapshot subject has four tokens after the prefix's, so it is never in a
// tenant filter (<prefix>.<tenant>.*, one token deep), in the bridge's
// filter of every tenant (<prefix>.*.*) or in the system filter
// (<prefix>._system.>: "_sy" is no escape, so "_system" is no tenant
// token); and its tenant token is literal, so no two tenants' snapshot
// filters overlap.

// snapshotStreamMarker follows the stream prefix in a snapshot stream's
// name.
const snapshotStreamMarker = "_s-"

// SnapshotToken is the token between the tenant and the thread in a
// snapshot subject. No thread token is "$snapshot" ('$' is always
// escaped), but it need not be: a snapshot subject is one token longer
// than a thread subject.
const SnapshotToken = "$snapshot"

// SnapshotStream returns the name of the stream holding the tenant's
// snapshots.
func (s Scheme) SnapshotStream(tenant string) string {
	return s.StreamPrefix + snapshotStreamMarker + EncodeTenant(tenant)
}

// SnapshotSubject returns the subject of one thread's snapshot.
func (s Scheme) SnapshotSubject(tenant, thread string) string {
	return s.SubjectPrefix + "." + EncodeTenant(tenant) + "." + SnapshotToken + "." + EncodeThread(thread)
}

// SnapshotFilter returns the subject filter matching every snapshot of
// the tenant; it is the snapshot stream's only subject.
func (s Scheme) SnapshotFilter(tenant string) string {
	return s.SubjectPrefix + "." + EncodeTenant(tenant) + "." + SnapshotToken + ".*"
}

// IsSnapshotStream reports whether name is a snapshot stream of the
// scheme, and whose.
func (s Scheme) IsSnapshotStream(name string) (tenant string, ok bool) {
	enc, ok := strings.CutPrefix(name, s.StreamPrefix+snapshotStreamMarker)
	if !ok {
		return "", false
	}
	tenant, err := DecodeTenant(enc)
	return tenant, err == nil
}
