package jsonscan

// maxDepth is encoding/json's nesting limit: deeper input is not valid.
const maxDepth = 10000

// Valid reports whether b is one JSON value with optional white space
// around it, exactly as encoding/json.Valid does (the same input accepted,
// fuzzed against it), in a fraction of its time: every push's data is
// checked with it.
func Valid(b []byte) bool {
	v := validator{b: b}
	v.ws()
	if !v.value(0) {
		return false
	}
	v.ws()
	return v.i == len(b)
}

type validator struct {
	b []byte
	i int
}

func (v *validator) ws() {
	for v.i < len(v.b) {
		switch v.b[v.i] {
		case ' ', '\t', '\n', '\r':
			v.i++
		default:
			return
		}
	}
}

// at reports whether the next byte is c, and steps over it if so.
func (v *validator) at(c byte) bool {
	if v.i < len(v.b) && v.b[v.i] == c {
		v.i++
		return true
	}
	return false
}

// value checks one value at v.i; depth is how many arrays and objects
// enclose it.
func (v *validator) value(depth int) bool {
	if v.i >= len(v.b) {
		return false
	}
	switch c := v.b[v.i]; c {
	case '"':
		return v.str()
	case '{':
		return v.object(depth + 1)
	case '[':
		return v.array(depth + 1)
	case 't':
		return v.lit("true")
	case 'f':
		return v.lit("false")
	case 'n':
		return v.lit("null")
	default:
		return (c == '-' || c >= '0' && c <= '9') && v.number()
	}
}

func (v *validator) object(depth int) bool {
	v.i++ // {
	if depth > maxDepth {
		return false
	}
	v.ws()
	if v.at('}') {
		return true
	}
	for {
		if v.i >= len(v.b) || v.b[v.i] != '"' || !v.str() {
			return false
		}
		v.ws()
		if !v.at(':') {
			return false
		}
		v.ws()
		if !v.value(depth) {
			return false
		}
		v.ws()
		if v.at('}') {
			return true
		}
		if !v.at(',') {
			return false
		}
		v.ws()
	}
}

func (v *validator) array(depth int) bool {
	v.i++ // [
	if depth > maxDepth {
		return false
	}
	v.ws()
	if v.at(']') {
		return true
	}
	for {
		if !v.value(depth) {
			return false
		}
		v.ws()
		if v.at(']') {
			return true
		}
		if !v.at(',') {
			return false
		}
		v.ws()
	}
}

// str checks a string: no control characters, only JSON's escapes. Other
// bytes pass as they are (encoding/json.Valid does not check UTF-8).
func (v *validator) str() bool {
	b, i := v.b, v.i+1 // after the opening quote
	for i < len(b) {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			v.i = i + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !hex(b[i+2]) || !hex(b[i+3]) || !hex(b[i+4]) || !hex(b[i+5]) {
					return false
				}
				i += 6
			default:
				return false
			}
		}
	}
	return false
}

// plain are the bytes a string holds as they are.
var plain = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

func hex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (v *validator) number() bool {
	v.at('-')
	switch {
	case v.at('0'):
	case v.digits() == 0:
		return false
	}
	if v.at('.') && v.digits() == 0 {
		return false
	}
	if v.at('e') || v.at('E') {
		if !v.at('+') {
			v.at('-')
		}
		if v.digits() == 0 {
			return false
		}
	}
	return true
}

// digits steps over decimal digits and returns how many.
func (v *validator) digits() int {
	start := v.i
	for v.i < len(v.b) && v.b[v.i] >= '0' && v.b[v.i] <= '9' {
		v.i++
	}
	return v.i - start
}

func (v *validator) lit(s string) bool {
	if len(v.b)-v.i >= len(s) && string(v.b[v.i:v.i+len(s)]) == s {
		v.i += len(s)
		return true
	}
	return false
}
