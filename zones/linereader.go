package zones

import (
	"bufio"
	"io"
	"io/fs"
)

// lineTracker follows which zone file the parser is reading and where, so
// that records that fail validation after parsing can be reported with the
// line they came from. dns.ZoneParser keeps positions to itself; it does read
// through io.ByteReader when the source offers one, so every byte it
// consumes passes through here.
type lineTracker struct {
	current *lineReader
}

type lineReader struct {
	t    *lineTracker
	name string
	r    *bufio.Reader
	c    io.Closer

	line     int    // line of the next byte
	lastLine int    // line of the last byte returned
	atStart  bool   // no non-blank byte seen yet on this line
	first    []byte // first non-blank byte of each line (index line-1), 0 if none yet
	prevEnd  int    // end line of the previous record from this file
}

func (t *lineTracker) reader(name string, r io.Reader, c io.Closer) *lineReader {
	return &lineReader{t: t, name: name, r: bufio.NewReader(r), c: c, line: 1, atStart: true, first: []byte{0}}
}

func (l *lineReader) ReadByte() (byte, error) {
	b, err := l.r.ReadByte()
	if err != nil {
		return b, err
	}
	l.t.current = l
	l.lastLine = l.line
	switch {
	case b == '\n':
		l.line++
		l.atStart = true
		l.first = append(l.first, 0)
	case l.atStart && b != ' ' && b != '\t' && b != '\r':
		l.atStart = false
		l.first[l.line-1] = b
	}
	return b, nil
}

func (l *lineReader) Read(p []byte) (int, error) {
	// The parser only uses ReadByte; Read exists to satisfy io.Reader.
	for i := range p {
		b, err := l.ReadByte()
		if err != nil {
			return i, err
		}
		p[i] = b
	}
	return len(p), nil
}

func (l *lineReader) Stat() (fs.FileInfo, error) { return nil, fs.ErrInvalid }

func (l *lineReader) Close() error {
	if l.c != nil {
		return l.c.Close()
	}
	return nil
}

// recordEnded reports the position of the record the parser just returned:
// the file and the first line after the previous record that holds
// something other than a comment or a directive.
func (t *lineTracker) recordEnded() (file string, line int) {
	l := t.current
	if l == nil {
		return "", 0
	}
	end := l.lastLine
	start := end
	for ln := l.prevEnd + 1; ln <= end; ln++ {
		if c := l.first[ln-1]; c != 0 && c != ';' && c != '$' {
			start = ln
			break
		}
	}
	l.prevEnd = end
	return l.name, start
}

// trackingFS opens $INCLUDE targets through fsys with line tracking.
type trackingFS struct {
	fsys fs.FS
	t    *lineTracker
}

func (f trackingFS) Open(name string) (fs.File, error) {
	file, err := f.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	return f.t.reader(name, file, file), nil
}
