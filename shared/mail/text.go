package mail

import (
	"strings"
	"unicode"

	"golang.org/x/net/html"
)

// TextFromHTML derives a readable plain-text part from an HTML body, the way
// a person would read it: script, style and title are dropped; paragraphs and
// headings are separated by a blank line; line breaks, divs, list items and
// table rows start new lines (list items with "- "); table cells are
// separated by spaces; images show their alt text; links read "text (url)"
// (just the url when the link has no text, just the text when it already is
// the url, nothing for in-page and javascript: links); entities are decoded;
// runs of white space collapse to one space and blank lines to one; <pre>
// keeps its white space. Never fails: malformed HTML is read as a browser's
// tokenizer would.
func TextFromHTML(src string) string {
	z := html.NewTokenizer(strings.NewReader(src))
	var w textWriter
	var links []link
	skip := 0 // depth inside elements whose text is not content
	pre := 0  // depth inside <pre>
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break // io.EOF: reading a strings.Reader fails in no other way
		}
		tok := z.Token()
		switch tt {
		case html.TextToken:
			switch {
			case skip > 0:
			case pre > 0:
				w.verbatim(tok.Data)
			default:
				w.text(tok.Data)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			if skipped[tok.Data] {
				if tt == html.StartTagToken {
					skip++
				}
				continue
			}
			if skip > 0 {
				continue
			}
			switch tok.Data {
			case "br":
				w.newline()
			case "hr":
				w.breakLines(2)
			case "li":
				w.breakLines(1)
				w.text("-")
				w.space = true
			case "img":
				if alt := attr(tok, "alt"); strings.TrimSpace(alt) != "" {
					w.space = w.space || w.lineText
					w.text(alt)
				}
			case "a":
				if tt == html.StartTagToken {
					links = append(links, link{href: strings.TrimSpace(attr(tok, "href")), start: w.b.Len()})
				}
			case "pre":
				w.breakLines(2)
				if tt == html.StartTagToken {
					pre++
				}
			default:
				w.breakLines(blockBreaks[tok.Data])
			}
		case html.EndTagToken:
			if skipped[tok.Data] {
				if skip > 0 {
					skip--
				}
				continue
			}
			if skip > 0 {
				continue
			}
			switch tok.Data {
			case "a":
				if n := len(links); n > 0 {
					l := links[n-1]
					links = links[:n-1]
					w.endLink(l)
				}
			case "td", "th":
				w.space = w.lineText
			case "pre":
				if pre > 0 {
					pre--
				}
				w.breakLines(2)
			default:
				w.breakLines(blockBreaks[tok.Data])
			}
		}
	}
	return strings.TrimRightFunc(w.b.String(), unicode.IsSpace)
}

// skipped elements contribute no text.
var skipped = map[string]bool{
	"script": true, "style": true, "title": true, "template": true,
	"svg": true,
}

// blockBreaks is how many line breaks an element puts before and after its
// content: 2 for a paragraph-like block (a blank line), 1 for other blocks.
var blockBreaks = map[string]int{
	"p": 2, "h1": 2, "h2": 2, "h3": 2, "h4": 2, "h5": 2, "h6": 2,
	"blockquote": 2, "ul": 2, "ol": 2, "dl": 2, "table": 2,
	"div": 1, "li": 1, "tr": 1, "dt": 1, "dd": 1, "section": 1, "article": 1,
	"header": 1, "footer": 1, "nav": 1, "aside": 1, "main": 1, "form": 1,
	"address": 1, "figure": 1, "figcaption": 1, "center": 1, "details": 1,
	"summary": 1, "tbody": 1, "thead": 1, "tfoot": 1, "caption": 1, "body": 1,
}

type link struct {
	href  string
	start int // length of the output when the link opened
}

func attr(t html.Token, name string) string {
	for _, a := range t.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

// textWriter builds the text lazily: breaks and spaces are owed and written
// only before the next visible character, so none lead or trail.
type textWriter struct {
	b        strings.Builder
	breaks   int  // line breaks owed (at most 2: one blank line)
	space    bool // a space owed on the current line
	lineText bool // the current line has text
}

func (w *textWriter) text(s string) {
	for _, r := range s {
		switch {
		case unicode.IsSpace(r): // includes NBSP
			w.space = w.space || w.lineText
		case invisible(r):
		default:
			w.flush()
			w.b.WriteRune(r)
		}
	}
}

// verbatim writes <pre> text: white space kept, CRLF made LF.
func (w *textWriter) verbatim(s string) {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	for _, r := range s {
		if r == '\n' {
			w.b.WriteByte('\n')
			w.lineText = false
			w.space = false
			continue
		}
		w.flush()
		w.b.WriteRune(r)
	}
}

// flush writes what is owed before a visible character.
func (w *textWriter) flush() {
	if w.breaks > 0 {
		if w.b.Len() > 0 {
			if w.lineText {
				w.b.WriteByte('\n')
			}
			if w.breaks > 1 {
				w.b.WriteByte('\n')
			}
		}
		w.breaks = 0
	} else if w.space && w.lineText {
		w.b.WriteByte(' ')
	}
	w.space = false
	w.lineText = true
}

// breakLines owes n line breaks (n=1 ends the line, n=2 adds a blank line),
// not adding to breaks already owed: block boundaries do not stack.
func (w *textWriter) breakLines(n int) {
	if n == 0 {
		return // an inline element
	}
	if n > w.breaks {
		w.breaks = n
	}
	w.space = false
}

// newline is <br>: each one counts, so <br><br> makes a blank line.
func (w *textWriter) newline() {
	if !w.lineText && w.breaks == 0 && w.b.Len() > 0 {
		// An empty line already ended by a previous <br>: this one adds a blank line.
		w.breaks = 2
	} else if w.breaks < 2 {
		w.breaks++
	}
	w.space = false
}

// endLink appends the target of a link after its text.
func (w *textWriter) endLink(l link) {
	if !showHref(l.href) {
		return
	}
	text := ""
	if l.start <= w.b.Len() {
		text = strings.TrimSpace(w.b.String()[l.start:])
	}
	if text == "" {
		w.space = w.space || w.lineText
		w.text(l.href)
		return
	}
	if sameTarget(text, l.href) {
		return
	}
	w.space = true
	w.text("(" + l.href + ")")
}

func showHref(h string) bool {
	lh := strings.ToLower(h)
	return h != "" && !strings.HasPrefix(h, "#") &&
		!strings.HasPrefix(lh, "javascript:") && !strings.HasPrefix(lh, "data:")
}

// sameTarget: the link text already says where it goes
// ("example.com/x" for https://example.com/x, "ann@x.com" for mailto:ann@x.com).
func sameTarget(text, href string) bool {
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(s))
		for _, p := range []string{"mailto:", "tel:", "https://", "http://", "www."} {
			s = strings.TrimPrefix(s, p)
		}
		return strings.TrimSuffix(s, "/")
	}
	return norm(text) == norm(href)
}

// invisible characters used as spacers in email HTML (preheader padding):
// zero-width space/joiners, word joiner, BOM, soft hyphen, combining
// grapheme joiner.
func invisible(r rune) bool {
	switch r {
	case '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad', '\u034f':
		return true
	}
	return false
}
