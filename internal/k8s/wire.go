package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The API server's JSON, cut down to what the cache keeps. encoding/json
// skips every other field, so managed fields, annotations and the pod spec
// cost decoding time but no memory past the decode.

// wirePod is the part of a v1 Pod that the cache reads.
type wirePod struct {
	Metadata struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		UID             string            `json:"uid"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		OwnerReferences []wireOwner       `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		ContainerStatuses          []wireContainer `json:"containerStatuses"`
		InitContainerStatuses      []wireContainer `json:"initContainerStatuses"`
		EphemeralContainerStatuses []wireContainer `json:"ephemeralContainerStatuses"`
	} `json:"status"`
}

type wireOwner struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Controller *bool  `json:"controller"`
}

type wireContainer struct {
	Name        string `json:"name"`
	ContainerID string `json:"containerID"`
}

// listMeta is the metadata of a PodList page.
type listMeta struct {
	ResourceVersion string `json:"resourceVersion"`
	Continue        string `json:"continue"`
}

// apiStatus is a meta/v1 Status: the body of a failed request and the
// object of an ERROR watch event.
type apiStatus struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// trim keeps what Lookup reads. A pod without a UID is no pod the API
// server sends, and could not be updated or deleted later, so it is
// dropped.
func (w *wirePod) trim() *pod {
	m := &w.Metadata
	if m.UID == "" {
		return nil
	}
	p := &pod{
		name:      m.Name,
		namespace: m.Namespace,
		uid:       m.UID,
		node:      w.Spec.NodeName,
		labels:    m.Labels,
	}
	// The controller is the first owner marked so, as the API's own
	// helpers pick it; the other owners never name the workload.
	for _, o := range m.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			p.controller = ownerRef{apiVersion: o.APIVersion, kind: o.Kind, name: o.Name}
			break
		}
	}
	st := &w.Status
	n := len(st.ContainerStatuses) + len(st.InitContainerStatuses) + len(st.EphemeralContainerStatuses)
	for _, list := range [][]wireContainer{st.ContainerStatuses, st.InitContainerStatuses, st.EphemeralContainerStatuses} {
		for _, c := range list {
			// A container the runtime has not started yet has no ID and
			// cannot be what a cgroup names.
			if id := bareID(c.ContainerID); id != "" {
				if p.containers == nil {
					p.containers = make([]containerRef, 0, n)
				}
				p.containers = append(p.containers, containerRef{name: c.Name, id: id})
			}
		}
	}
	return p
}

// bareID drops the "<runtime>://" scheme that pod status puts before the
// ID the runtime uses in cgroup paths.
func bareID(statusID string) string {
	if _, id, ok := strings.Cut(statusID, "://"); ok {
		return id
	}
	return statusID
}

// decodeList reads one page of a pod list. It walks the document token by
// token and decodes the items one at a time, so a page of 500 pods never
// sits in memory as a whole: only the pod being decoded and what is kept
// of the others. Like encoding/json, it takes keys in any case, and a
// repeated key's last value.
func decodeList(r io.Reader) ([]*pod, listMeta, error) {
	var meta listMeta
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return nil, meta, fmt.Errorf("pod list: %w", err)
	}
	if tok == nil { // null: an empty list
		return nil, meta, nil
	}
	if tok != json.Delim('{') {
		return nil, meta, fmt.Errorf("pod list: want an object, got %v", tok)
	}
	var pods []*pod
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, meta, fmt.Errorf("pod list: %w", err)
		}
		key, _ := tok.(string)
		switch {
		case strings.EqualFold(key, "metadata"):
			err = dec.Decode(&meta)
		case strings.EqualFold(key, "items"):
			pods, err = decodeItems(dec)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return nil, meta, fmt.Errorf("pod list %s: %w", key, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, meta, fmt.Errorf("pod list: %w", err)
	}
	return pods, meta, nil
}

func decodeItems(dec *json.Decoder) ([]*pod, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf("want an array, got %v", tok)
	}
	var pods []*pod
	for dec.More() {
		var w wirePod
		if err := dec.Decode(&w); err != nil {
			return nil, err
		}
		if p := w.trim(); p != nil {
			pods = append(pods, p)
		}
	}
	_, err = dec.Token() // the closing bracket
	return pods, err
}

// Watch event types.
const (
	eventAdded    = "ADDED"
	eventModified = "MODIFIED"
	eventDeleted  = "DELETED"
	eventBookmark = "BOOKMARK"
	eventError    = "ERROR"
)

// watchEvent is one event of a watch stream, decoded. pod is set for
// ADDED, MODIFIED and DELETED (nil when the object had no UID); rv is the
// object's resourceVersion, the point to resume a broken watch from.
type watchEvent struct {
	typ string
	pod *pod
	rv  string
}

// errGone is the API server's 410: the resourceVersion asked for is older
// than the history it keeps, and only a new list can bring the cache up to
// date.
var errGone = errors.New("resource version too old (410 Gone)")

// decodeEvent decodes one watch event. An ERROR event comes back as an
// error, wrapping errGone when its status says 410.
func decodeEvent(raw []byte) (watchEvent, error) {
	var env struct {
		Type   string          `json:"type"`
		Object json.RawMessage `json:"object"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return watchEvent{}, fmt.Errorf("watch event: %w", err)
	}
	ev := watchEvent{typ: env.Type}
	switch env.Type {
	case eventAdded, eventModified, eventDeleted:
		var w wirePod
		if err := json.Unmarshal(env.Object, &w); err != nil {
			return watchEvent{}, fmt.Errorf("watch %s event: %w", env.Type, err)
		}
		ev.pod, ev.rv = w.trim(), w.Metadata.ResourceVersion
	case eventBookmark:
		// A bookmark's object is a pod with only its resourceVersion set.
		var w struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(env.Object, &w); err != nil {
			return watchEvent{}, fmt.Errorf("watch bookmark: %w", err)
		}
		ev.rv = w.Metadata.ResourceVersion
	case eventError:
		var st apiStatus
		if err := json.Unmarshal(env.Object, &st); err != nil {
			return watchEvent{}, fmt.Errorf("watch error event: %w", err)
		}
		return watchEvent{}, st.err("watch")
	}
	// Other types are left for a future API to define; they change nothing
	// here.
	return ev, nil
}

// err turns a Status into an error that says what the API server said.
func (st apiStatus) err(op string) error {
	msg := st.Message
	if msg == "" {
		msg = st.Reason
	}
	if st.Code == 410 {
		return fmt.Errorf("%s: %w: %s", op, errGone, msg)
	}
	return &statusError{op: op, code: st.Code, reason: st.Reason, msg: msg}
}

// statusError is a request the API server refused.
type statusError struct {
	op     string
	code   int
	reason string
	msg    string
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s: API server answered %d", e.op, e.code)
	if e.reason != "" {
		s += " " + e.reason
	}
	if e.msg != "" && e.msg != e.reason {
		s += ": " + e.msg
	}
	return s
}
