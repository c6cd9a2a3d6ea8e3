package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Shell completion: `meridian completion bash|zsh|fish` prints a script
// that asks the binary itself for the candidates of the word being
// completed (`meridian __complete WORD...`, the words after "meridian"
// up to the cursor), so that commands, flags and the names of regions and
// services are completed as this binary knows them.

// filesDirective, as the only candidate, asks the shell to complete file
// names.
const filesDirective = ":files"

// completeTimeout bounds the API calls of a completion: a shell must not
// hang on a server that does not answer.
const completeTimeout = 2 * time.Second

var topCommands = []string{"server", "prober", "ctl", "geoip", "dnssec", "signer", "version", "completion", "help"}

func runCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || completionScripts[args[0]] == "" {
		fmt.Fprintln(stderr, "usage: meridian completion bash|zsh|fish\n\n"+
			"Prints the shell's completion script. Load it with:\n"+
			"  bash: source <(meridian completion bash)   (or save it in /etc/bash_completion.d/meridian)\n"+
			"  zsh:  source <(meridian completion zsh)    (after compinit; or save it as _meridian in $fpath)\n"+
			"  fish: meridian completion fish | source    (or save it in ~/.config/fish/completions/meridian.fish)")
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	fmt.Fprint(stdout, completionScripts[args[0]])
	return 0
}

// runComplete prints the candidates for the last of words, one a line.
func runComplete(ctx context.Context, words []string, stdout io.Writer) int {
	if len(words) == 0 {
		words = []string{""}
	}
	for _, c := range completions(ctx, words) {
		fmt.Fprintln(stdout, c)
	}
	return 0
}

// completions lists the candidates for the last of words (the word under
// the cursor, maybe empty), given the words before it.
func completions(ctx context.Context, words []string) []string {
	cur, before := words[len(words)-1], words[:len(words)-1]
	if len(before) == 0 {
		return withPrefix(topCommands, cur)
	}
	switch before[0] {
	case "ctl":
		return ctlCompletions(ctx, before[1:], cur)
	case "completion":
		if len(before) == 1 {
			return withPrefix(slices.Sorted(maps.Keys(completionScripts)), cur)
		}
		return nil
	case "geoip":
		if len(before) == 1 {
			return withPrefix([]string{"build", "lookup"}, cur)
		}
		return flagCompletions(before[:2], before[2:], cur)
	case "dnssec":
		if len(before) == 1 {
			return withPrefix([]string{"ds", "keygen"}, cur)
		}
		return flagCompletions(before[:2], before[2:], cur)
	case "server", "prober", "signer", "version":
		return flagCompletions(before[:1], before[1:], cur)
	}
	return nil
}

func withPrefix(cands []string, prefix string) []string {
	var out []string
	for _, c := range cands {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// fileFlags are the flags whose value is a file name.
var fileFlags = []string{"config", "db", "v4", "v6", "out", "f", "file", "token-file", "dir", "cacert", "cert", "key"}

var helpFlagRE = regexp.MustCompile(`(?m)^\s+-(\S+)(?:\s+(\S+))?`)

// flagCompletions completes the flags of a command other than ctl, read
// from its own -h, and the file names its file flags take.
func flagCompletions(cmd, args []string, cur string) []string {
	var out bytes.Buffer
	run(context.Background(), append(slices.Clone(cmd), "-h"), &out, io.Discard)
	takesValue := map[string]bool{}
	var names []string
	for _, m := range helpFlagRE.FindAllStringSubmatch(out.String(), -1) {
		names = append(names, "--"+m[1])
		takesValue[m[1]] = m[2] != ""
	}
	if len(args) > 0 {
		prev := strings.TrimLeft(args[len(args)-1], "-")
		if takesValue[prev] && !strings.Contains(args[len(args)-1], "=") {
			if slices.Contains(fileFlags, prev) {
				return []string{filesDirective}
			}
			return nil
		}
	}
	if strings.HasPrefix(cur, "-") {
		return withPrefix(names, cur)
	}
	return nil
}

// ctlCompletions completes a ctl command line: done are the words after
// "ctl" before the cursor.
func ctlCompletions(ctx context.Context, done []string, cur string) []string {
	var g ctlFlags
	fs := newCtlFlagSet(&g)
	// Split the words into flags (set on g, for --server and the token)
	// and arguments, as the command will.
	var pos []string
	valueOf := "" // the flag the word under the cursor is the value of
	for i := 0; i < len(done); i++ {
		w := done[i]
		if !strings.HasPrefix(w, "-") || w == "-" {
			pos = append(pos, w)
			continue
		}
		if w == "--" {
			pos = append(pos, done[i+1:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		f := fs.Lookup(name)
		switch {
		case f == nil:
		case isBoolFlag(f) || hasValue:
			_ = fs.Set(name, cmpOr(value, "true"))
		case i+1 < len(done):
			_ = fs.Set(name, done[i+1])
			i++
		default:
			valueOf = name
		}
	}
	if valueOf != "" {
		switch valueOf {
		case "o", "output":
			return withPrefix(ctlFormats, cur)
		case "type":
			return withPrefix([]string{"A", "AAAA"}, cur)
		case "revert-if":
			return withPrefix([]string{"unhealthy", "high-watermark", "unhealthy,high-watermark"}, cur)
		case "drain", "service":
			kind := map[string]string{"drain": "region", "service": "service"}[valueOf]
			return withCtl(ctx, g, func(x *ctl, ctx context.Context) []string { return withPrefix(x.names(ctx, kind), cur) })
		}
		if slices.Contains(fileFlags, valueOf) {
			return []string{filesDirective}
		}
		return nil
	}
	cmd, args, err := findCommand(pos)
	if strings.HasPrefix(cur, "-") {
		flags := ctlGlobalFlags
		if err == nil {
			flags = append(slices.Clone(flags), cmd.flags...)
		}
		var out []string
		for _, f := range flags {
			dash := "--"
			if len(f) == 1 {
				dash = "-"
			}
			out = append(out, dash+f)
		}
		return withPrefix(out, cur)
	}
	if err != nil {
		return withPrefix(ctlWords(pos), cur)
	}
	if cmd.complete == nil {
		return nil
	}
	return withCtl(ctx, g, func(x *ctl, ctx context.Context) []string {
		out := cmd.complete(x, ctx, len(args), args)
		if len(out) == 1 && out[0] == filesDirective {
			return out
		}
		return withPrefix(out, cur)
	})
}

// withCtl runs f with a ctl of the server the flags name, its calls
// bounded by completeTimeout.
func withCtl(ctx context.Context, g ctlFlags, f func(*ctl, context.Context) []string) []string {
	g.timeout = completeTimeout
	x, err := newCtl(g, io.Discard, io.Discard)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	return f(x, ctx)
}

// ctlWords are the words that can come next when pos names no command
// yet: the commands, or the verbs of a group.
func ctlWords(pos []string) []string {
	var out []string
	for _, c := range ctlCommands {
		switch {
		case len(pos) == 0 && !slices.Contains(out, c.words[0]):
			out = append(out, c.words[0])
		case len(pos) == 1 && len(c.words) == 2 && c.words[0] == pos[0]:
			out = append(out, c.words[1])
		}
	}
	return out
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func cmpOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func completeGet(x *ctl, ctx context.Context, i int, before []string) []string {
	if i == 0 {
		return []string{"regions", "services", "status"}
	}
	if i == 1 && getKinds[before[0]] != "status" {
		return x.names(ctx, getKinds[before[0]])
	}
	return nil
}

func completeDelete(x *ctl, ctx context.Context, i int, before []string) []string {
	if i == 0 {
		return []string{"region", "service"}
	}
	if i == 1 {
		return x.names(ctx, strings.TrimSuffix(before[0], "s"))
	}
	return nil
}

func completeRegionArg(x *ctl, ctx context.Context, i int, _ []string) []string {
	if i == 0 {
		return x.names(ctx, "region")
	}
	return nil
}

func completeServiceArg(x *ctl, ctx context.Context, i int, _ []string) []string {
	if i == 0 {
		return x.names(ctx, "service")
	}
	return nil
}

// completeWeightsSet completes the service, then REGION= for each of its
// regions not given yet.
func completeWeightsSet(x *ctl, ctx context.Context, i int, before []string) []string {
	if i == 0 {
		return x.names(ctx, "service")
	}
	svc, _, err := x.c.Service(ctx, before[0])
	if err != nil {
		return nil
	}
	var out []string
	for _, sr := range svc.Regions {
		if !slices.ContainsFunc(before[1:], func(a string) bool { return strings.HasPrefix(a, sr.Region+"=") }) {
			out = append(out, sr.Region+"=")
		}
	}
	return out
}

func completeFiles(_ *ctl, _ context.Context, i int, _ []string) []string {
	if i == 0 {
		return []string{filesDirective}
	}
	return nil
}

// completionScripts are the scripts of `meridian completion`, by shell.
var completionScripts = map[string]string{
	"bash": `# bash completion for meridian: source <(meridian completion bash)
_meridian() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local IFS=$'\n'
	local -a out
	out=($("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
	if [[ ${out[0]} == ":files" ]]; then
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
		return
	fi
	COMPREPLY=($(compgen -W "${out[*]}" -- "$cur"))
	# REGION= takes its weight right after the sign.
	if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
		compopt -o nospace 2>/dev/null
	fi
}
complete -F _meridian meridian
`,
	"zsh": `#compdef meridian
# zsh completion for meridian: source <(meridian completion zsh) after
# compinit, or save as _meridian in a directory of $fpath.
_meridian() {
	local -a out eq plain
	out=("${(@f)$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	if [[ ${out[1]} == ":files" ]]; then
		_files
		return
	fi
	# REGION= takes its weight right after the sign.
	eq=(${(M)out:#*=})
	plain=(${out:#*=})
	(( ${#plain} )) && compadd -- "${plain[@]}"
	(( ${#eq} )) && compadd -S '' -- "${eq[@]}"
	return 0
}
if [[ ${funcstack[1]} == _meridian ]]; then
	_meridian "$@"
else
	compdef _meridian meridian
fi
`,
	"fish": `# fish completion for meridian: meridian completion fish | source
function __meridian_complete
	set -l words (commandline -opc)
	set -l cur (commandline -ct)
	set -l rest
	if test (count $words) -gt 1
		set rest $words[2..-1]
	end
	set -l out ($words[1] __complete $rest "$cur" 2>/dev/null)
	if test "$out[1]" = ":files"
		__fish_complete_path "$cur"
		return
	end
	printf '%s\n' $out
end
complete -c meridian -f -a '(__meridian_complete)'
`,
}
