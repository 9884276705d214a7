package capture

import (
	"bytes"
	"os/exec"
	"testing"
)

// TestPeekedBytesAreNotCaptured: recv and recvmsg with MSG_PEEK leave the
// bytes in the socket for the next read, so capturing them would hand the
// decoder the same bytes twice, at different offsets.
func TestPeekedBytesAreNotCaptured(t *testing.T) {
	requireRoot(t)
	p, err := Load(Config{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer p.Close()
	port, serverPID := startServer(t, "127.0.0.1")

	c, stop := collect(t, p)
	client := exec.Command("python3", "testdata/peek_client.py", "127.0.0.1", port)
	if out, err := client.CombinedOutput(); err != nil || string(out) != "done\n" {
		t.Fatalf("client: %v: %s", err, out)
	}
	stop()

	c.mu.Lock()
	defer c.mu.Unlock()
	var cs, ss *[2]stream
	for k := range c.opens {
		switch k.PID {
		case uint32(client.Process.Pid):
			cs = c.streams[k]
		case uint32(serverPID):
			ss = c.streams[k]
		}
	}
	if cs == nil || ss == nil {
		t.Fatalf("client or server connection not captured: %v", c.opens)
	}
	if got, want := cs[Ingress].Bytes(), ss[Egress].Bytes(); !bytes.Equal(got, want) {
		t.Errorf("client read %q, server wrote %q", got, want)
	}
	if !bytes.HasPrefix(cs[Ingress].Bytes(), []byte("HTTP/1.")) || bytes.Count(cs[Ingress].Bytes(), []byte("HTTP/1.")) != 1 {
		t.Errorf("client ingress holds the response head more or less than once: %q", cs[Ingress].Bytes())
	}
}
