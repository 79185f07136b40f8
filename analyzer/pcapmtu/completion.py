"""Shell completion for bash, zsh and fish, without guessing the user's shell.

`pcapmtu completion SHELL` prints a script; the script asks pcapmtu for candidates by running it with
`_PCAPMTU_COMPLETE=<shell>_complete` and the words typed so far (click's protocol: `COMP_WORDS`,
`COMP_CWORD`), and pcapmtu answers one candidate per line: `plain,analyze`, or `file,PARTIAL` /
`dir,PARTIAL` when the word is a path, which the shell completes itself (so names with spaces, `~` and
the shell's own quoting work). Command names, option names and paths (`CAPTURE`, `FILE`, `DIR`) complete.

typer's own `--install-completion` guesses the shell from the parent process and fails where that guess
does (containers, CI, `sudo`); its runtime also reads the instruction the other way round
(`complete_bash`), so click's `bash_complete` said "Shell complete not supported". The scripts below are
click 8's, with the fixes noted in them.
"""

from __future__ import annotations

import os
import re
import sys

try:  # typer 0.2x carries its own copy of click
    from typer._click.shell_completion import (
        CompletionItem,
        _resolve_context,
        _resolve_incomplete,
        split_arg_string,
    )
except ImportError:  # pragma: no cover - typer with click itself
    from click.shell_completion import (  # type: ignore[no-redef]
        CompletionItem,
        _resolve_context,
        _resolve_incomplete,
        split_arg_string,
    )

VAR = "_PCAPMTU_COMPLETE"
PROG = "pcapmtu"
# What a metavar means to the shell: these arguments and options take a path.
PATHS = {"CAPTURE": "file", "FILE": "file", "DIR": "dir"}

BASH = r"""# pcapmtu completion for bash (needs bash 4.4+): pcapmtu completion bash
_pcapmtu_completion() {
    local IFS=$'\n'
    local response completion type value
    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD _PCAPMTU_COMPLETE=bash_complete "$1")
    COMPREPLY=()
    for completion in $response; do
        IFS=',' read -r type value <<< "$completion"
        if [[ $type == dir ]]; then
            COMPREPLY+=($(compgen -d -- "$value"))
            compopt -o filenames 2>/dev/null
        elif [[ $type == file ]]; then
            COMPREPLY+=($(compgen -f -- "$value"))
            compopt -o filenames 2>/dev/null
        elif [[ $type == plain ]]; then
            COMPREPLY+=("$value")
        fi
    done
    return 0
}

complete -o nosort -F _pcapmtu_completion pcapmtu
"""

ZSH = r"""#compdef pcapmtu
# pcapmtu completion for zsh: pcapmtu completion zsh

_pcapmtu_completion() {
    local -a completions completions_with_descriptions response
    local type key descr
    (( ! $+commands[pcapmtu] )) && return 1

    response=("${(@f)$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) _PCAPMTU_COMPLETE=zsh_complete pcapmtu)}")

    for type key descr in ${response}; do
        if [[ "$type" == "plain" ]]; then
            if [[ "$descr" == "_" ]]; then
                completions+=("$key")
            else
                completions_with_descriptions+=("$key":"$descr")
            fi
        elif [[ "$type" == "dir" ]]; then
            _path_files -/
        elif [[ "$type" == "file" ]]; then
            _path_files -f
        fi
    done

    if [ -n "$completions_with_descriptions" ]; then
        _describe -V unsorted completions_with_descriptions -U
    fi

    if [ -n "$completions" ]; then
        compadd -U -V unsorted -a completions
    fi
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    # autoloaded from a file named _pcapmtu in $fpath
    _pcapmtu_completion "$@"
else
    # eval or source: register it (compinit must have run)
    compdef _pcapmtu_completion pcapmtu
fi
"""

FISH = r"""# pcapmtu completion for fish: pcapmtu completion fish
function _pcapmtu_completion
    set -l response (env _PCAPMTU_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) COMP_CWORD=(commandline -t) pcapmtu)
    for completion in $response
        # one split only: a description may hold commas
        set -l metadata (string split -m 1 "," -- $completion)
        if test "$metadata[1]" = dir
            __fish_complete_directories $metadata[2]
        else if test "$metadata[1]" = file
            __fish_complete_path $metadata[2]
        else if test "$metadata[1]" = plain
            echo $metadata[2]
        end
    end
end

complete --no-files --command pcapmtu --arguments "(_pcapmtu_completion)"
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}

# How to install each script, for docs/cli.md and the man page (clidoc) and `pcapmtu completion --help`.
INSTALL = {
    "bash": [
        ('eval "$(pcapmtu completion bash)"', "in ~/.bashrc"),
        (
            "mkdir -p ~/.local/share/bash-completion/completions && "
            "pcapmtu completion bash > ~/.local/share/bash-completion/completions/pcapmtu",
            "or once, where the bash-completion package is installed (loaded on demand)",
        ),
    ],
    "zsh": [
        ('eval "$(pcapmtu completion zsh)"', "in ~/.zshrc, after compinit"),
        (
            "mkdir -p ~/.zfunc && pcapmtu completion zsh > ~/.zfunc/_pcapmtu",
            "or once, with fpath=(~/.zfunc $fpath) before compinit in ~/.zshrc (loaded on demand)",
        ),
    ],
    "fish": [
        (
            "mkdir -p ~/.config/fish/completions && "
            "pcapmtu completion fish > ~/.config/fish/completions/pcapmtu.fish",
            "once (fish loads it on demand)",
        ),
    ],
}


def candidates(command, args: list[str], incomplete: str) -> list[CompletionItem]:
    """What may come next after `args`: subcommands, options, a choice, or a path for the shell."""
    ctx = _resolve_context(command, {}, PROG, args)
    obj, incomplete = _resolve_incomplete(ctx, args, incomplete)
    items = obj.shell_complete(ctx, incomplete)
    kind = PATHS.get(getattr(obj, "metavar", None) or "")
    if not items and kind and not getattr(obj, "is_flag", False):
        items = [CompletionItem(incomplete, type=kind)]
    return items


def _words(shell: str) -> tuple[list[str], str]:
    """The words before the cursor and the one being completed, from the variables the script sets."""
    words = split_arg_string(os.environ.get("COMP_WORDS", ""))
    if shell == "fish":  # COMP_WORDS is the line up to the cursor, COMP_CWORD the token being completed
        token = os.environ.get("COMP_CWORD", "")
        incomplete = split_arg_string(token)[0] if token else ""
        args = words[1:]
        if incomplete and args and args[-1] == incomplete:
            args.pop()
        return args, incomplete
    cword = int(os.environ.get("COMP_CWORD", "0") or 0)
    return words[1:cword], words[cword] if cword < len(words) else ""


def _line(shell: str, item: CompletionItem) -> str:
    help_text = re.sub(r"\s+", " ", item.help or "").replace("`", "").strip()
    if shell == "zsh":
        value = item.value.replace(":", r"\:") if help_text else item.value
        return f"{item.type}\n{value}\n{help_text or '_'}"
    if shell == "fish" and help_text:
        return f"{item.type},{item.value}\t{help_text}"
    return f"{item.type},{item.value}"


def respond(command, instruction: str) -> int:
    """Answer the script's `_PCAPMTU_COMPLETE=<shell>_complete` request (or `<shell>_source`: the script)."""
    shell, _, action = instruction.partition("_")
    if shell not in SCRIPTS or action not in ("complete", "source"):
        print(
            f"pcapmtu: {VAR}={instruction}: expected bash, zsh or fish with _complete or _source",
            file=sys.stderr,
        )
        return 2
    if action == "source":
        print(SCRIPTS[shell], end="")
        return 0
    args, incomplete = _words(shell)
    lines = [_line(shell, item) for item in candidates(command, args, incomplete)]
    if lines:
        print("\n".join(lines))
    return 0
