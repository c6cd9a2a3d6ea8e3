# Shell functions shared by bench/run.sh and bench/cover.sh (sourced).

# alive PID: the process runs (an exited child stays a zombie until reaped,
# and kill -0 would still succeed on it).
alive() {
	local state
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ -n $state && $state != Z ]]
}

# stop_pids PID... sends TERM to every process, waits up to 5 s for them
# to exit, then KILLs and reaps whatever is left.
stop_pids() {
	local pid
	for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
	for _ in {1..50}; do
		local left=0
		for pid in "$@"; do alive "$pid" && left=1; done
		((left == 0)) && break
		sleep 0.1
	done
	for pid in "$@"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}

# fill TEMPLATE OUT KEY=VALUE... copies a config template, replacing @KEY@.
fill() {
	local template=$1 out=$2 kv
	shift 2
	cp "$template" "$out"
	for kv in "$@"; do
		sed -i "s|@${kv%%=*}@|${kv#*=}|g" "$out"
	done
}
