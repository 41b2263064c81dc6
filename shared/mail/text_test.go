package mail

import "testing"

func TestTextFromHTML(t *testing.T) {
	tests := []struct {
		name, html, want string
	}{
		{"plain text", "Hello", "Hello"},
		{"empty", "", ""},
		{"paragraphs get a blank line",
			"<p>One</p><p>Two</p>", "One\n\nTwo"},
		{"br and div make lines",
			"<div>a<br>b</div><div>c</div>", "a\nb\nc"},
		{"double br is a blank line, more collapse",
			"a<br><br><br><br>b", "a\n\nb"},
		{"headings",
			"<h1>Title</h1>Body text<h2>Sub</h2>more", "Title\n\nBody text\n\nSub\n\nmore"},
		{"list items",
			"<p>Steps:</p><ul><li>one</li><li>two <b>bold</b></li></ul><p>end</p>",
			"Steps:\n\n- one\n- two bold\n\nend"},
		{"script style title and comments dropped",
			"<html><head><title>T</title><style>p{color:red}</style><script>alert('x<p>')</script></head>" +
				"<body><!-- note --><p>Shown</p><script>var a = '</p>';</script></body></html>",
			"Shown"},
		{"link as text (url)",
			`Read <a href="https://ex.com/a?b=1&amp;c=2">the post</a> now`,
			"Read the post (https://ex.com/a?b=1&c=2) now"},
		{"link whose text is the url",
			`<a href="https://ex.com/">ex.com</a>`, "ex.com"},
		{"mailto link with the address as text",
			`<a href="mailto:ann@ex.com">ann@ex.com</a>`, "ann@ex.com"},
		{"link without text shows the url",
			`<a href="https://ex.com/x"><img src="x.png"></a>`, "https://ex.com/x"},
		{"image link uses alt",
			`<a href="https://ex.com/x"><img src="x.png" alt="Logo"></a>`, "Logo (https://ex.com/x)"},
		{"anchor and javascript links show only text",
			`<a href="#top">Top</a> <a href="javascript:void(0)">Go</a>`, "Top Go"},
		{"entities decoded",
			"Tom &amp; Jerry &lt;3 &quot;hi&quot; &#8212; &eacute;t&eacute; caf&#xe9;", `Tom & Jerry <3 "hi" — été café`},
		{"whitespace collapses, nbsp is a space",
			"  lots \n\t of   space&nbsp;&nbsp;here  ", "lots of space here"},
		{"preheader spacers vanish",
			"Hi&zwnj;&nbsp;&zwnj;&nbsp;&#8203;there", "Hi there"},
		{"table cells separated, rows on lines",
			"<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>", "a b\nc d"},
		{"pre keeps whitespace",
			"<p>x</p><pre>  line 1\n    line 2</pre><p>y</p>", "x\n\n  line 1\n    line 2\n\ny"},
		{"unicode kept",
			"<p>Привет, <b>Анна</b>!</p>", "Привет, Анна!"},
		{"malformed html",
			"<p>open <b>bold <i>it</p>tail<div", "open bold it\n\ntail"},
		{"unclosed script hides the rest",
			"before<script>if (a < b) {", "before"},
		{"hr",
			"a<hr>b", "a\n\nb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TextFromHTML(tt.html); got != tt.want {
				t.Errorf("TextFromHTML(%q)\n got %q\nwant %q", tt.html, got, tt.want)
			}
		})
	}
}
