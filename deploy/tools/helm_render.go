// A stand-in for `helm template`, for deploy/validate.sh where helm is not
// installed: Go's text/template with sprig and Helm's include, toYaml,
// required and fail, strict about missing keys (as `helm lint --strict`).
// Not Helm's engine: no lookup, tpl, .Capabilities or subcharts; the chart
// uses none of them. Builds offline from Debian packages (GOPATH mode):
//
//	apt-get install golang-go golang-github-masterminds-sprig-dev \
//	  golang-github-ghodss-yaml-dev
//
//	helm_render CHART [VALUES.yaml]...   (release "mia", namespace "default")
package main

import (
	"bytes"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func merge(dst, src map[string]interface{}) {
	for k, v := range src {
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func main() {
	chart := os.Args[1]
	var values map[string]interface{}
	b, err := ioutil.ReadFile(filepath.Join(chart, "values.yaml"))
	must(err)
	must(yaml.Unmarshal(b, &values))
	for _, f := range os.Args[2:] { // extra values files, merged like -f
		var extra map[string]interface{}
		b, err := ioutil.ReadFile(f)
		must(err)
		must(yaml.Unmarshal(b, &extra))
		merge(values, extra)
	}
	var chartMeta map[string]interface{}
	b, err = ioutil.ReadFile(filepath.Join(chart, "Chart.yaml"))
	must(err)
	must(yaml.Unmarshal(b, &chartMeta))
	data := map[string]interface{}{
		"Values":  values,
		"Release": map[string]interface{}{"Name": "mia", "Namespace": "default", "Service": "Helm"},
		"Chart": map[string]interface{}{"Name": chartMeta["name"], "Version": chartMeta["version"],
			"AppVersion": chartMeta["appVersion"]},
	}
	t := template.New("gotpl").Option("missingkey=error")
	funcs := sprig.TxtFuncMap()
	funcs["toYaml"] = func(v interface{}) string {
		out, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	funcs["include"] = func(name string, d interface{}) (string, error) {
		var buf bytes.Buffer
		err := t.ExecuteTemplate(&buf, name, d)
		return buf.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return v, fmt.Errorf(msg)
		}
		return v, nil
	}
	funcs["fail"] = func(msg string) (string, error) { return "", fmt.Errorf(msg) }
	t.Funcs(funcs)
	files, err := filepath.Glob(filepath.Join(chart, "templates", "*"))
	must(err)
	sort.Strings(files)
	for _, f := range files {
		b, err := ioutil.ReadFile(f)
		must(err)
		_, err = t.New("mia/templates/" + filepath.Base(f)).Parse(string(b))
		must(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasPrefix(base, "_") {
			continue
		}
		var buf bytes.Buffer
		must(t.ExecuteTemplate(&buf, "mia/templates/"+base, data))
		if base == "NOTES.txt" {
			continue // rendered only to check that it renders
		}
		fmt.Printf("---\n# Source: mia/templates/%s\n%s\n", base, strings.ReplaceAll(buf.String(), "<no value>", ""))
	}
}
