package webui

import (
	"embed"
	"html/template"
	"io"
	"net/http"
	"path"
)

// assets are the page's files: its HTML shell, script and style sheet.
//
//go:embed assets
var assets embed.FS

var pageTmpl = template.Must(template.ParseFS(assets, "assets/page.html"))

// pageData fills the page's shell. The script reads the mode and the
// names from the body's data attributes; a report inlines the script,
// the style sheet and its data.
type pageData struct {
	Title   string
	Mode    string // index, testbed, machine or report
	Bed     string
	Machine string
	// For a report:
	Inline bool
	CSS    template.CSS
	JS     template.JS
	Data   template.JS // the report's JSON
}

func renderPage(w io.Writer, d pageData) error { return pageTmpl.Execute(w, d) }

// page serves the shell of a page of the given mode.
func (s *Server) page(mode string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d := pageData{Mode: mode, Bed: r.PathValue("bed"), Machine: r.PathValue("machine"), Title: "shakedown"}
		switch {
		case d.Machine != "":
			d.Title = d.Machine + " · " + d.Bed + " · shakedown"
		case d.Bed != "":
			d.Title = d.Bed + " · shakedown"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'")
		renderPage(w, d)
	}
}

// serveStatic serves the script and the style sheet.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name != "app.js" && name != "style.css" {
		http.NotFound(w, r)
		return
	}
	http.ServeFileFS(w, r, assets, path.Join("assets", name))
}

// asset returns an embedded file's contents.
func asset(name string) string {
	b, err := assets.ReadFile(path.Join("assets", name))
	if err != nil {
		panic(err) // embedded at build time
	}
	return string(b)
}
