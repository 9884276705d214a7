// Command emptyroot reports what a process sees inside the empty root that
// the Dockerfile test builds, so the test can tell its harness apart from
// the observer: it lists the root, and looks for the kernel files the
// observer reads.
package main

import (
	"fmt"
	"os"
)

func main() {
	entries, err := os.ReadDir("/")
	if err != nil {
		fmt.Println("readdir / failed:", err)
		os.Exit(1)
	}
	for _, e := range entries {
		fmt.Println("root:", e.Name())
	}
	for _, p := range []string{"/proc/self/exe", "/proc/1/cgroup", "/sys/kernel/btf/vmlinux"} {
		if _, err := os.Stat(p); err != nil {
			fmt.Println("missing:", p)
		} else {
			fmt.Println("present:", p)
		}
	}
	if _, err := os.Stat("/bin/sh"); err == nil {
		fmt.Println("present: /bin/sh")
	}
}
