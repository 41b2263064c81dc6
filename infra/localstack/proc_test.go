//go:build linux

package localstack

import (
	"net"
	"os"
	"testing"
)

func TestListensOn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if owns, err := listensOn(os.Getpid(), port); err != nil || !owns {
		t.Errorf("this process listens on %d: got %v, %v", port, owns, err)
	}
	if owns, _ := listensOn(os.Getppid(), port); owns {
		t.Errorf("the parent process does not listen on %d", port)
	}
	free, _ := freePort()
	if owns, _ := listensOn(os.Getpid(), free); owns {
		t.Errorf("nobody listens on %d", free)
	}
}
