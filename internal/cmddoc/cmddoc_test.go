package cmddoc

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/knock-go/knock/internal/cmdline"
)

func testApp() *cli.App {
	return &cli.App{Name: "demo", Usage: "a demo", Flags: []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "/etc/demo.conf", Usage: "read `file`"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "say more"},
		&cli.StringFlag{Name: "mode", Category: cmdline.AddedCategory, Usage: "pick `how`"},
		&cli.BoolFlag{Name: "secret", Hidden: true, Usage: "never shown"},
	}}
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	md, err := Page{App: testApp(), Synopsis: "**demo**", Description: "Demo.", AddedNote: "New.",
		Options:  map[string]string{"verbose": "Twice is louder."},
		Sections: []Section{{Title: "FILES", Body: "    /etc/demo.conf"}}}.Markdown()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# NAME\n\ndemo - a demo\n",
		"**-c**, **--config** *file*\n: Read file. The default is **/etc/demo.conf**.\n",
		"**-v**, **--verbose**\n: Say more. Twice is louder.\n",
		"**--mode** *how*\n: Pick how. New.\n",
		"# FILES\n\n    /etc/demo.conf\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "secret") {
		t.Errorf("a hidden flag is documented:\n%s", md)
	}
}

func TestPageRefusesUnknownFlags(t *testing.T) {
	t.Parallel()
	_, err := Page{App: testApp(), Options: map[string]string{"gone": "x"}}.Markdown()
	if err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("a page documenting a flag it lacks: err = %v", err)
	}
}

func TestCompletionNeedsEveryValue(t *testing.T) {
	t.Parallel()
	if _, err := (Completion{App: testApp(), Values: map[string]Values{"config": Files}}).Bash(); err == nil || !strings.Contains(err.Error(), "--mode") {
		t.Errorf("--mode without Values: err = %v", err)
	}
	if _, err := (Completion{App: testApp(), Values: map[string]Values{"config": Files, "mode": Anything, "verbose": Files}}).Bash(); err == nil || !strings.Contains(err.Error(), "verbose") {
		t.Errorf("Values for a flag without a value: err = %v", err)
	}
	script, err := Completion{App: testApp(), Values: map[string]Values{"config": Files, "mode": Words("a", "b")}}.Bash()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-c|--config)", "compgen -W 'a b'", "complete -F _demo demo"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if strings.Contains(script, "--secret") {
		t.Errorf("a hidden flag completes:\n%s", script)
	}
}
