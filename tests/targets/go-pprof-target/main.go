// Command go-pprof-target is Cinder's scrape target for tests: a standard-library-only
// Go program that serves net/http/pprof on a loopback address and keeps a handful of
// distinctly named workloads running, so every profile it serves (CPU, heap, allocs,
// goroutine, mutex, block) holds stacks a test can look for.
//
//	go-pprof-target [-addr 127.0.0.1:6060] [-duty 20] [-exit-after 0]
//
// Its first stdout line is `go-pprof-target listening on http://ADDR pid=PID`; with
// port 0 the kernel picks the port and that line tells which. SIGTERM or SIGINT stops it.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"log"
	"math/rand"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6060", "listen address (loopback only)")
	duty := flag.Int("duty", 20, "percent of wall time each CPU worker is busy")
	exitAfter := flag.Duration("exit-after", 0, "stop by itself after this long (0: never)")
	retainMiB := flag.Int("retain-mb", 16, "MiB kept live by the retainer")
	flag.Parse()
	if flag.NArg() > 0 {
		*addr = flag.Arg(0)
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatalf("bad address %q: %v", *addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Fatalf("%q is not a loopback address", *addr)
	}
	runtime.MemProfileRate = 64 << 10
	runtime.SetMutexProfileFraction(5)
	runtime.SetBlockProfileRate(10000)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *exitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *exitAfter)
		defer cancel()
	}
	var wg sync.WaitGroup
	start := func(worker string, run func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pprof.Do(ctx, pprof.Labels("worker", worker), run)
		}()
	}
	startWorkers(start, *duty, *retainMiB)

	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	fmt.Printf("go-pprof-target listening on http://%s pid=%d\n", listener.Addr(), os.Getpid())
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	server := &http.Server{ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	if err := server.Serve(listener); err != nil && err != http.ErrServerClosed {
		log.Fatalf("serve: %v", err)
	}
	wg.Wait()
}

// startWorkers launches every workload, each under its own `worker` label.
func startWorkers(start func(string, func(context.Context)), duty, retainMiB int) {
	start("hash", func(c context.Context) { hashWorker(c, duty) })
	start("sort", func(c context.Context) { sortWorker(c, duty) })
	start("json", func(c context.Context) { jsonWorker(c, duty) })
	start("regex", func(c context.Context) { regexWorker(c, duty) })
	ledger := &ledger{balances: map[int]int{}}
	for i := 0; i < 4; i++ {
		seed := int64(i)
		start("mutex", func(c context.Context) { contend(c, ledger, seed) })
	}
	pipe := make(chan []byte)
	start("producer", func(c context.Context) { produce(c, pipe) })
	start("consumer", func(c context.Context) { consume(pipe) })
	start("retainer", func(c context.Context) { retainer(c, retainMiB) })
	for i := 0; i < 8; i++ {
		start("idle", func(c context.Context) { <-c.Done() })
	}
}

// busyFor runs unit for about duty percent of the wall time until ctx ends.
func busyFor(ctx context.Context, duty int, unit func()) {
	if duty < 1 || duty > 100 {
		duty = 20
	}
	for ctx.Err() == nil {
		began := time.Now()
		for time.Since(began) < 10*time.Millisecond {
			unit()
		}
		rest := time.Since(began) * time.Duration(100-duty) / time.Duration(duty)
		select {
		case <-ctx.Done():
		case <-time.After(rest):
		}
	}
}

func hashWorker(ctx context.Context, duty int) {
	block := make([]byte, 32<<10)
	rand.New(rand.NewSource(7)).Read(block)
	busyFor(ctx, duty, func() { digest(block) })
}

//go:noinline
func digest(block []byte) {
	sum := sha256.Sum256(block)
	block[crc32.ChecksumIEEE(block)%uint32(len(block))] ^= sum[3]
}

func sortWorker(ctx context.Context, duty int) {
	rng := rand.New(rand.NewSource(11))
	numbers := make([]int, 10000)
	names := make([]string, 3000)
	busyFor(ctx, duty, func() { shuffleAndSort(rng, numbers, names) })
}

//go:noinline
func shuffleAndSort(rng *rand.Rand, numbers []int, names []string) {
	for i := range numbers {
		numbers[i] = rng.Intn(1 << 30)
	}
	sort.Ints(numbers)
	for i := range names {
		names[i] = strconv.FormatUint(rng.Uint64(), 36)
	}
	sort.Strings(names)
}

type invoice struct {
	Number int               `json:"number"`
	Lines  []invoiceLine     `json:"lines"`
	Meta   map[string]string `json:"meta"`
}

type invoiceLine struct {
	Item  string  `json:"item"`
	Count int     `json:"count"`
	Cost  float64 `json:"cost"`
}

func jsonWorker(ctx context.Context, duty int) {
	rng := rand.New(rand.NewSource(13))
	busyFor(ctx, duty, func() { encodeDecode(rng) })
}

//go:noinline
func encodeDecode(rng *rand.Rand) {
	batch := make([]invoice, 40)
	for i := range batch {
		batch[i].Number = rng.Int()
		batch[i].Meta = map[string]string{"shop": strconv.Itoa(rng.Intn(50))}
		for j := 0; j < 6; j++ {
			batch[i].Lines = append(batch[i].Lines, invoiceLine{Item: fmt.Sprint("item-", rng.Intn(1e6)), Count: j + 1, Cost: rng.Float64()})
		}
	}
	text, err := json.Marshal(batch)
	if err != nil {
		panic(err)
	}
	var back []invoice
	if err := json.Unmarshal(text, &back); err != nil {
		panic(err)
	}
}

var accessLog = regexp.MustCompile(`^(\S+) \[(\d+)/(\w+)\] "(GET|POST) ([^"]+)" (\d{3}) (\d+)$`)

func regexWorker(ctx context.Context, duty int) {
	rng := rand.New(rand.NewSource(17))
	lines := make([]string, 150)
	for i := range lines {
		lines[i] = fmt.Sprintf(`10.0.%d.%d [%d/Dec] "GET /items/%d" %d %d`, rng.Intn(255), rng.Intn(255), rng.Intn(31), i, 200+rng.Intn(4)*100, rng.Intn(1e5))
	}
	busyFor(ctx, duty, func() { matchLines(lines) })
}

//go:noinline
func matchLines(lines []string) int {
	bytes := 0
	for _, line := range lines {
		if m := accessLog.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[7])
			bytes += n
		}
	}
	return bytes
}

type ledger struct {
	sync.Mutex
	balances map[int]int
}

func contend(ctx context.Context, l *ledger, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	for ctx.Err() == nil {
		transfer(l, rng.Intn(100))
		time.Sleep(time.Duration(rng.Intn(400)) * time.Microsecond)
	}
}

//go:noinline
func transfer(l *ledger, account int) {
	l.Lock()
	defer l.Unlock()
	for i := 0; i < 1500; i++ {
		l.balances[(account+i)%100] += i
	}
}

func produce(ctx context.Context, out chan<- []byte) {
	defer close(out)
	for ctx.Err() == nil {
		select {
		case out <- make([]byte, 128):
		case <-ctx.Done():
		}
		time.Sleep(3 * time.Millisecond)
	}
}

func consume(in <-chan []byte) {
	for message := range in {
		message[0]++
	}
}

type cacheEntry struct {
	name string
	data []byte
}

// retainer keeps about mib MiB live in a ring, replacing one entry every few ms.
func retainer(ctx context.Context, mib int) {
	rng := rand.New(rand.NewSource(19))
	ring := make([]*cacheEntry, mib*16+1)
	tick := time.NewTicker(4 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ring[i%len(ring)] = buildCacheEntry(rng, i)
	}
}

//go:noinline
func buildCacheEntry(rng *rand.Rand, i int) *cacheEntry {
	return &cacheEntry{name: "entry-" + strconv.Itoa(i), data: make([]byte, 56<<10+rng.Intn(16<<10))}
}
