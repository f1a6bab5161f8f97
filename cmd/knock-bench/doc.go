// Command bench compares Debian's knockd 0.8 with ours (raw backend), one
// after the other on the same configuration, in two network namespaces
// joined by a veth pair, and prints a markdown table: a spoofed-source
// SYN flood, the latency of an opening, the cost of idling, a storm of
// openings on one door while another is knocked on, how long a knocker
// may pause between knocks during a flood, openings into nftables sets
// and ipsets (by NFT_Set and IPSet doors and by shell commands), and the
// matcher's Go benchmarks. Run it as root from the module's root:
//
//	go run ./cmd/knock-bench
//
// It needs the ip command, /usr/sbin/knockd (Debian package knockd) and
// the go command (to build ours and run the matcher benchmarks). The
// namespaces are deleted at the end, on error and on ^C too; those of a
// run that was killed are deleted by the next run. The daemons run in a
// process group of their own and die with this command.
//
// The defaults take about four to five minutes: per daemon, 60 s idle,
// 200 timed openings, a flood of 1,000,000 spoofed SYNs with 20
// legitimate sequences (one to two seconds: the generator alone sends 1.0
// to 1.3 million packets a second on a 2-core VM; knockd then needs
// several seconds to empty its ring), and the expiry of the flood's
// attempts (Seq_Timeout 10 s); then a second run of the daemon, 30 to 60
// s, for the survival flood and the storm (below); then about 20 s of
// matcher benchmarks; the kernel-set phase (below) about two and a half
// minutes more, and needs the nft and ipset commands. -idle, -flood,
// -openings, -legit and -seq-timeout shorten or lengthen it; -survive= (empty) and -storm 0 skip the second run's
// phases, -survive, -survive-knockers, -survive-warmup, -storm,
// -storm-rate, -storm-knocks and -storm-wait set them;
// -only runs one daemon; -pin runs the generator on CPU 0 and the daemon
// on CPU 1 only, so that a daemon that spreads over both cores cannot
// slow the generator down (without it, the rate a daemon is flooded at
// depends on the daemon); -perf records the whole machine during each
// flood; -timeout bounds the whole run (default 20 minutes). The
// generator's rate alone, with no daemon running, is measured first and
// printed above the table. -flood-rate paces the flood (frames a second)
// instead of sending as fast as the generator goes.
//
// -compare old=PATH,new=PATH runs the flood phase alone, for two or more
// builds of our knockd, -rounds times (5) in turn (old, new, old, new,
// ...), to tell what a change costs per packet from a loaded machine's
// noise; it runs no knockd 0.8 and no other phase, and builds nothing:
//
//	go run ./cmd/knock-bench -compare old=/tmp/knockd.old,new=/tmp/knockd.new -flood-rate 100000
//
// Every run is flooded with the same frames (one seed) at the same
// pace, and prints, per run, the frames sent, the packets processed and
// dropped, the openings, the daemon's CPU per million packets processed
// and its context switches per thousand; then, per build, the median and
// range of its CPU per million and of its ratio to the first build's run
// of the same round. Pace the flood (-flood-rate) below what the
// generator reaches on the loaded machine: the CPU a packet costs falls
// as the rate rises (the reader takes more packets per wake-up), so two
// builds flooded at whatever rate the machine gives them at that moment
// are not compared on the same work. -cpuprofile DIR has each daemon
// write a CPU profile (KNOCKD_CPUPROFILE) to DIR/NAME-ROUND.pprof, for
// go tool pprof -diff_base. -cachegrind DIR runs each daemon under
// valgrind --tool=cachegrind (with GODEBUG=asyncpreemptoff=1: Go's
// preemption signals upset valgrind) and adds the instructions of its
// whole run, start-up, flood and stop, per packet processed: counted
// instructions do not depend on what else the machine runs, as seconds
// do, though the Go runtime's background work still moves them by a few
// per cent. The kernel's part (system calls, wake-ups) is not counted;
// the CPU time and the context switches show it. Under valgrind a daemon
// is some 20 times slower: pace the flood at 10,000 frames a second or
// so, and check that nothing was dropped.
//
// Each daemon is started, checked (a knock must open a door), watched
// idle, timed, then flooded, and stopped; then started again with -v, on
// the same configuration and one more door, for the survival flood and
// the storm, and stopped before the other daemon starts. The addresses
// are 198.18.0.1 and 2001:db8::1 (client) and 198.18.0.2 and 2001:db8::2
// (server); the storm's knockers 198.18.0.11 and up, the survival
// flood's knockers 2001:db8::100 and up; the spoofed sources the rest of
// 198.18.0.0/15 outside 198.18.0.0/24, and 2001:db8:8000::/33: nothing
// here can leave the two namespaces.
//
// How each figure is measured, from outside the daemons so that both are
// measured alike (see measure.go):
//
//   - Flood: a generator of ours writes whole Ethernet frames on the
//     client's end of the veth (AF_PACKET, sendmmsg, qdisc bypass): SYNs
//     to the first knock port from random sources in 198.18.0.0/15, and
//     among them, evenly spread, the legitimate sequences from the
//     client's real address. Processed means delivered to the daemon by
//     the kernel: the daemon's packet sockets' PACKET_STATISTICS (read
//     through pidfd_getfd), packets accepted by the filter less those
//     dropped because the socket's queue (ours) or ring (libpcap) was
//     full. CPU is the threads' time on a CPU as the scheduler counts it
//     (/proc/PID/task/*/schedstat; utime+stime are 4 ms samples here)
//     from the flood's start until the daemon has gone quiet (it has
//     then handled all it was given); peak RSS is VmHWM. A sequence opened the door when its
//     start command ran.
//   - Latency: a UDP datagram to a one-knock door, sent from the client
//     namespace through its IP stack; the start command is the shell
//     builtin echo into a FIFO that this command reads. The time is from
//     just before the send to the line's arrival, both on this machine's
//     monotonic clock: it includes the trip through the veth (a few
//     microseconds) and the shell's start, not the start of a date
//     binary. The same command started by this program alone, with no
//     daemon, is timed first: the floor no daemon can go under.
//   - Idle: CPU time (the sum of /proc/PID/task/*/schedstat) and wake-ups
//     (the sum of voluntary and involuntary context switches of every
//     thread) over the idle period, with no traffic at all.
//   - Survival: the second run's first phase, at the generator's top
//     rate. A flood of IPv6 SYNs to the flooded door's first port, each
//     from a source of its own (so that every one starts an attempt of
//     its own, which the 130,816 IPv4 sources of the first flood cannot
//     do beyond that many), and among them real knockers: after
//     -survive-warmup spoofed frames (500,000: the daemon's table of
//     attempts is full by then), -survive-knockers (2) knockers for each
//     pause of -survive, each knocking the door's three ports with that
//     many spoofed frames between two knocks (IPv6 knockers in an IPv6
//     flood: a daemon that budgets the two families apart is measured on
//     the attack it cannot keep apart). A knocker before the flood is the
//     control. A knocker got in when the start command ran for its
//     address. The longest pause survived is the longest at which every
//     knocker got in, and at every shorter pause: a number of newer
//     spoofed attempts, and the seconds it takes the generator to send
//     them at the rate it reached. Packets the kernel dropped (ring or
//     queue full) are knocks lost too, and shown. The memory is the peak
//     RSS (VmHWM) of the second run, which holds the full table: an upper
//     bound of what the matcher holds.
//   - Storm: the second run's second phase, once the survival flood's
//     attempts have expired (knockd 0.8 ends attempts only when a packet
//     comes: a knock on the latency door makes it, and is waited for). A
//     paced stream of -storm spoofed UDP datagrams (2,000 at -storm-rate
//     2,000 a second: one second) to a one-port door whose start command
//     is sleep 1, so that every datagram is an opening and a command; in
//     it, -storm-knocks (5) knocks on the latency door, evenly spread,
//     each from an address of its own (the start command's %IP% tells
//     which knock ran). Per knock: from the daemon's OPEN SESAME line on
//     its standard output (-v; both daemons write it before they start
//     the command) to the start command's line in the FIFO, and from the
//     knock's send; a command that has not run -storm-wait (10 s) after
//     the storm's end counts as not run. The stormed door's OPEN SESAME
//     and running command lines are counted from the same output.
//   - Kernel sets (-ksets, on by default; -ksets-only runs it alone, in
//     about two minutes): six runs, each on a fresh nftables table (inet
//     kbench, sets lat4 and crowd4 with timeouts) or fresh ipsets (lat4,
//     crowd4, hash:ip timeout) in the server namespace: ours with
//     NFT_Set, ours and knockd 0.8 with Start_Command = nft add element
//     ..., ours with IPSet, ours and knockd 0.8 with Start_Command =
//     ipset add ... -exist; the configuration is the first run's and two
//     doors, one knock (UDP 6200) into lat4 and two (UDP 6300, 6301) into
//     crowd4, Cmd_Timeout 300 s. Latency (nftables runs only):
//     -kset-openings (200) knocks, one at a time, -opening-gap apart,
//     each a raw frame from an address of its own (198.18.2.0/23), timed
//     from just before the frame's send to the arrival of the element's
//     NFT_MSG_NEWSETELEM notification in the server namespace, as read by
//     a probe on the timing goroutine, which reads the notifications
//     without sleeping (recvfrom MSG_DONTWAIT, sched_yield between
//     reads) until the knocker's comes, so that no wake-up of this
//     command's counts as the daemon's; the same notification's arrival
//     at an nftables monitor (google/nftables, a goroutine that sleeps
//     until it comes; socket buffer 64 MiB, so that a crowd's
//     notifications are not lost, which the table would say) is printed
//     below the table. The crowd: -kset-crowd (10,000) sources from
//     198.19.0.0/16 each send the two knocks, paced over one second; the
//     time is from the first frame to the last source's element (nft:
//     its notification; ipset: a test for the last source every
//     millisecond, then a count of the whole set), at most -kset-cap (30
//     s), after which the number in the set is shown. CPU is the daemon's
//     own (schedstat) from the crowd's first frame to then, and its
//     reaped children's (cutime + cstime, 10 ms ticks): the shell
//     commands; peak RSS is the daemon's VmHWM.
//   - Metrics: after both daemons, ours alone is flooded again as in the
//     flood phase, -metrics-rounds (2) times with metrics off and as many
//     with --metrics on and /metrics scraped every second from inside
//     the server's namespace, the order alternating from round to round
//     (off, on; then on, off), each run a fresh daemon. The rows sum the
//     rounds of each kind and give on/off for the share of the frames sent
//     that were processed and for the CPU per packet processed. A scrape
//     makes the daemon read PACKET_STATISTICS, which resets them, so the
//     "on" runs take the packets processed and dropped from the daemon's
//     own knockd_packets_total and knockd_packets_dropped_total (a scrape
//     just before the flood, one after it has gone quiet) instead.
//   - Matcher: go test -bench 'BenchmarkHandle|BenchmarkFlood' -benchmem
//     -cpu 1 ./match/ (one core).
//
// Reading PACKET_STATISTICS resets the kernel's counters: the flood phase
// reads them once before (to zero them) and once after. Neither daemon
// reads them itself during a run (ours does when /metrics is scraped or
// --status asked, which the bench does only in the metrics phase, see
// above), so nothing is taken from it.
package main
