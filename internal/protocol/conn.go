package protocol

import (
	"strconv"
	"strings"
)

// ConnID is the id of a node's n-th connection: "c_<node>_<n>", n in base 36.
func ConnID(node string, n uint64) string { return "c_" + node + "_" + strconv.FormatUint(n, 36) }

// ConnNode returns the node part of a connection id "c_<node>_<n>".
func ConnNode(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, "c_")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 || i == len(rest)-1 {
		return "", false
	}
	return rest[:i], true
}
