//go:build unix

package app

import (
	"io/fs"
	"syscall"
)

// fileID is the device and inode of a file, which change when a file is
// replaced rather than written in place.
func fileID(fi fs.FileInfo) [2]uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{uint64(st.Dev), st.Ino}
	}
	return [2]uint64{}
}
