package rules

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// filePos is a 1-based line and column in the ruleset file.
type filePos struct{ line, col int }

// scalarMap maps positions inside a YAML scalar's value (an expression)
// back to the file, so that a CEL error points at the file's line and
// column. It aligns the value with the source text rune
// by rune: exact for plain, single-line quoted and literal (|) scalars;
// close for folded scalars and quoted scalars with escapes.
type scalarMap struct {
	pos   []filePos // pos[i]: where the value's i-th rune is in the file
	start filePos
}

func newScalarMap(lines [][]rune, n *yaml.Node) *scalarMap {
	m := &scalarMap{start: filePos{n.Line, n.Column}}
	line, col := n.Line, n.Column // 1-based, in runes
	switch n.Style {
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		col++
	case yaml.LiteralStyle, yaml.FoldedStyle:
		line, col = line+1, 1
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		m.start = filePos{line, col}
	}
	value := []rune(n.Value)
	m.pos = make([]filePos, 0, len(value))
	at := func(l, c int) (rune, bool) {
		if l < 1 || l > len(lines) {
			return 0, false
		}
		src := lines[l-1]
		if c-1 < len(src) {
			return src[c-1], true
		}
		return '\n', true
	}
	advance := func() {
		if l := line; l >= 1 && l <= len(lines) && col-1 < len(lines[l-1]) {
			col++
			return
		}
		line, col = line+1, 1
	}
	for _, r := range value {
		for {
			s, ok := at(line, col)
			if !ok {
				return m
			}
			if s == r {
				break
			}
			advance()
		}
		if len(m.pos) == 0 && n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			m.start = filePos{line, col}
		}
		m.pos = append(m.pos, filePos{line, col})
		advance()
	}
	return m
}

// at returns the file position of a CEL location inside the value: line is
// 1-based and column 0-based, both in runes, as cel-go reports them.
func (m *scalarMap) at(value string, line, col int) filePos {
	if line < 1 {
		return m.start
	}
	offset := 0
	for i, l := range strings.Split(value, "\n") {
		if i == line-1 {
			break
		}
		offset += len([]rune(l)) + 1
	}
	offset += col
	switch {
	case offset < 0 || len(m.pos) == 0:
		return m.start
	case offset < len(m.pos):
		return m.pos[offset]
	default:
		last := m.pos[len(m.pos)-1]
		return filePos{last.line, last.col + 1}
	}
}

func sourceLines(src []byte) [][]rune {
	raw := strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n")
	out := make([][]rune, len(raw))
	for i, l := range raw {
		out[i] = []rune(l)
	}
	return out
}
