// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Kernel side of llm-observer: syscall tracepoints and TLS-library uprobes
 * that find the connections carrying LLM API traffic and copy both
 * directions of them into one ring buffer. Everything else leaves after one
 * or two map look-ups.
 *
 * Each source keeps its own state and byte offsets. The syscall source keys
 * a socket by (tgid, fd) and checks on every call that the fd still names
 * the same socket, so a reused fd number never inherits a tracked state. A
 * socket whose bytes are TLS records is marked V_TLS: its ciphertext never
 * goes up; the TLS source (OpenSSL's SSL_read/SSL_write) keys the connection
 * by (tgid, SSL*) and learns the socket from the system call the thread
 * makes inside the TLS call, or, for stacks that do their own socket I/O
 * (Node.js), from the socket read just before SSL_read and the socket
 * written just after SSL_write.
 *
 * Per connection the state moves UNKNOWN -> TRACK | RECHECK | dropped: the
 * first plaintext bytes decide. An HTTP request line whose path starts with
 * a configured LLM prefix (or a configured port) means TRACK; any other HTTP
 * request means RECHECK, where each later buffer is peeked for a request
 * line, because keep-alive clients reuse a connection for /api/tags and then
 * /api/chat; anything else is dropped. A connection that was open before
 * the observer started may first be seen mid-message, so it gets a few
 * buffers (or a response start, which means RECHECK) to show a request.
 *
 * Needs Linux 5.12 or later (BPF atomic fetch-and-add with its result,
 * typed pointers in global functions).
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CHUNK_MAX 16384	  /* bytes of payload per ring record */
#define CHUNKS_PER_BUF 8  /* so at most 128 KiB of one buffer is copied */
#define IOVS_MAX 8	  /* iovecs looked at in readv/writev/msghdr */
#define PREFIX_MAX 48	  /* longest configurable path prefix */
#define PREFIXES_MAX 32	  /* configurable path prefixes (LLM and MCP together) */
#define PEEK 8		  /* bytes read to recognise a request method */
#define STRIKES_MAX 64	  /* buffers an older connection gets to show a request */
#define MSG_PEEK 2	  /* recv flag: the bytes stay queued for the next read */

enum verdict {
	V_UNKNOWN = 0,
	V_TRACK = 1,
	V_RECHECK = 2,
	/* A socket carrying TLS records: the TLS probes carry its plaintext. */
	V_TLS = 3,
	/* A TLS connection whose plaintext is not LLM traffic. */
	V_IGNORE = 4,
};

enum role {
	ROLE_UNKNOWN = 0,
	ROLE_CLIENT = 1,
	ROLE_SERVER = 2,
};

enum direction {
	DIR_EGRESS = 0,
	DIR_INGRESS = 1,
};

enum event_kind {
	KIND_DATA = 1,
	KIND_OPEN = 2,
	KIND_CLOSE = 3,
	/* A process called exec: userspace looks for TLS libraries to probe. */
	KIND_EXEC = 4,
	/* A process without probed TLS made a TLS connection. */
	KIND_TLS_SEEN = 5,
};

enum event_source {
	SOURCE_SYSCALL = 0,
	SOURCE_OPENSSL = 1,
	SOURCE_GOTLS = 2,
};

enum event_flag {
	/* Bytes of this buffer after this record were not copied. */
	FLAG_TRUNCATED = 1,
	/* The copy from user memory failed; the record holds no bytes. */
	FLAG_FAULT = 2,
	/* Bytes of this direction were lost before this record, how many is
	 * not known (an in-flight map was full). */
	FLAG_LOST = 4,
};

enum counter {
	COUNTER_RECORDS = 0,
	COUNTER_BYTES,
	COUNTER_CONNS_TRACKED,
	COUNTER_RINGBUF_FULL,
	COUNTER_RINGBUF_FULL_BYTES,
	COUNTER_TRUNCATED_BUFFERS,
	COUNTER_TRUNCATED_BYTES,
	COUNTER_CONN_MAP_FULL,
	COUNTER_ACTIVE_MAP_FULL,
	COUNTER_READ_FAULTS,
	COUNTER_FD_REUSED,
	COUNTER_TLS_CALLS,
	COUNTER_TLS_CALL_MAP_FULL,
	COUNTER_TLS_NO_SOCKET,
	COUNTER_JOINED_MIDWAY,
	COUNTER_VERDICT_DROPPED,
	COUNTER_NOTICES_LOST,
	COUNTER_MAX,
};

/* Header of every ring record; KIND_DATA is followed by len payload bytes,
 * KIND_OPEN by a struct conn_info. */
struct event {
	__u64 ts_ns;   /* CLOCK_MONOTONIC: write entry, or read exit */
	__u64 conn_id; /* unique per tracked connection since load */
	__u64 offset;  /* byte offset of the payload in its direction */
	__u64 handle;  /* what the source keys the connection by: fd, or SSL* */
	__u32 pid;
	__u32 tid;
	__s32 fd;      /* the socket, -1 when a TLS connection's is not known */
	__u32 len;
	__u8 kind;
	__u8 dir;
	__u8 source;
	__u8 flags;
	__u8 role;
	__u8 pad[3];
	char comm[16];
};

/* A process event for TLS discovery, on its own ring so that a flood of
 * data can never crowd it out. */
struct notice {
	__u32 pid;
	__u8 kind;
	__u8 pad[3];
};

struct conn_info {
	__u16 family;
	__u16 local_port;
	__u16 remote_port;
	__u16 pad;
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

struct conn_key {
	__u32 tgid;
	__s32 fd;
};

struct tls_key {
	__u32 tgid;
	__u32 pad;
	__u64 ssl;
};

struct conn_state {
	__u64 id;
	__u64 bytes[2];
	__u64 sk;     /* syscall source: the socket the fd named when seen */
	__u64 tls;    /* V_TLS sockets: the SSL* carrying their plaintext */
	__s32 fd;     /* TLS source: the socket's fd once learnt, else -1 */
	__u8 verdict;
	__u8 role;
	__u8 fresh;   /* seen from connect/accept: its first bytes are a message start */
	__u8 strikes; /* buffers of an older connection that did not start a request */
	__u8 lost[2]; /* per direction: bytes were lost before the next record */
	__u8 h2;      /* HTTP/2: tracked until userspace, which can read :path, decides */
	__u8 source;  /* TLS connections: the library whose calls carry them */
	__u8 pad[4];
};

struct io_args {
	__u64 ts_ns;
	__u64 buf;    /* the buffer, or the iovec array when iovcnt > 0 */
	__u64 iovcnt;
	__s32 fd;
	__u8 dir;
	__u8 busy;    /* task storage: the slot holds a call not yet returned */
	__u8 pad[2];
};

/* A TLS call in flight on a thread, saved at its entry for its return. */
struct tls_call {
	__u64 ssl;
	__u64 buf;
	__u64 len_ptr; /* SSL_*_ex: where the library stores the length moved */
	__u64 ts_ns;
	__s32 fd;      /* the socket the thread used inside the call, or -1 */
	__u8 dir;
	__u8 pad[3];
};

/* What a thread last did on TLS sockets, for stacks whose TLS calls make no
 * socket calls of their own. */
struct tls_thread {
	__s32 last_in_fd; /* the TLS socket the thread last read from, or -1 */
	__u32 pad;
	/* A plaintext write whose socket was not known at its return: sent
	 * when the thread next writes to a TLS socket. */
	__u64 defer_ssl;
	__u64 defer_buf;
	__u64 defer_len;
	__u64 defer_ts;
};

/* A path prefix as 64-bit words and a mask of its bytes, so that matching is
 * six AND-compares instead of a byte loop the verifier would walk through. */
struct path_prefix {
	__u64 word[PREFIX_MAX / 8];
	__u64 mask[PREFIX_MAX / 8];
	__u32 len;
	__u32 pad;
};

struct record {
	struct event ev;
	union {
		__u8 data[CHUNK_MAX];
		struct conn_info info;
	};
};

/* Set by the loader before the program is loaded. */
const volatile __u32 self_tgid = 0;
const volatile __u64 wakeup_bytes = 256 * 1024;
/* When set, only the processes in tls_allow are followed by the TLS probes. */
const volatile __u8 tls_filter = 0;
/* When set, syscall arguments wait for the exit in the thread's own task
 * storage (active_task) instead of the active hash: no hashing, no lock, no
 * map to fill up, and freed with the thread. Set when the kernel offers
 * bpf_task_storage_get to tracepoint programs. */
const volatile __u8 task_storage = 0;

/* Force the generator to emit these types for Go. */
const struct event *unused_event __attribute__((unused));
const struct conn_info *unused_conn_info __attribute__((unused));
const struct notice *unused_notice __attribute__((unused));
const struct path_prefix *unused_path_prefix __attribute__((unused));
const struct tls_key *unused_tls_key __attribute__((unused));
const struct tls_call *unused_tls_call __attribute__((unused));
const struct go_offsets *unused_go_offsets __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));
const enum event_kind *unused_event_kind __attribute__((unused));
const enum event_flag *unused_event_flag __attribute__((unused));
const enum event_source *unused_event_source __attribute__((unused));
const enum role *unused_role __attribute__((unused));
const enum direction *unused_direction __attribute__((unused));
const enum verdict_value *unused_verdict_value __attribute__((unused));

__u64 conn_seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} notices SEC(".maps");

/* Sockets of the syscall source that are TCP and not yet dismissed. Not an
 * LRU: a tracked connection must not be evicted by unrelated churn; a full
 * map is counted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, struct conn_key);
	__type(value, struct conn_state);
} conns SEC(".maps");

/* Connections of the TLS source, by SSL*. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, struct tls_key);
	__type(value, struct conn_state);
} tls_conns SEC(".maps");

/* File descriptors known not to matter: files, pipes, UDP, non-HTTP TCP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, __u8);
} skip SEC(".maps");

/* Arguments saved at syscall entry for the exit, by thread. Not an LRU: an
 * evicted entry would lose bytes without a trace. A full map marks the
 * connection's direction as lost; entries of threads that died mid-call are
 * freed by userspace's sweep. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct io_args);
} active SEC(".maps");

/* The same, in the thread's task storage, when task_storage is set. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct io_args);
} active_task SEC(".maps");

/* TLS calls in flight, by thread; same rules as active. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

/* Hints for finding a TLS call's socket; an evicted entry only costs a
 * connection whose socket stays unknown, which is counted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct tls_thread);
} tls_threads SEC(".maps");

/* Userspace's verdict on an HTTP/2 connection, by connection id: the kernel
 * cannot read a path inside HPACK, so it sends such a connection's first
 * frames up and obeys what comes back. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u8);
} verdicts SEC(".maps");

enum verdict_value {
	VERDICT_KEEP = 1,
	VERDICT_DROP = 2,
};

/* Processes the TLS probes follow when tls_filter is set. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} tls_allow SEC(".maps");

/* Processes already reported for making TLS connections. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} tls_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct record);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PREFIXES_MAX);
	__type(key, __u32);
	__type(value, struct path_prefix);
} llm_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} llm_ports SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += n;
}

/* fd_socket returns the socket behind fd of the current task, or NULL when
 * fd is not a socket. It reads through the task's file table with CO-RE. */
static __always_inline struct socket *fd_socket(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0)
		return 0;
	if ((unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	unsigned short mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	return (struct socket *)BPF_CORE_READ(f, private_data);
}

static __always_inline struct sock *tcp_sock(struct socket *s)
{
	if (!s || BPF_CORE_READ(s, type) != SOCK_STREAM)
		return 0;
	struct sock *sk = BPF_CORE_READ(s, sk);
	if (!sk)
		return 0;
	unsigned short family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	return sk;
}

static __always_inline void skip_fd(struct conn_key *k)
{
	__u8 one = 1;
	bpf_map_update_elem(&skip, k, &one, BPF_ANY);
}

/* new_conn_id numbers a tracked connection; ids only grow, so userspace can
 * tell a late record of a replaced connection from a new one. */
static __always_inline __u64 new_conn_id(void)
{
	return __sync_fetch_and_add(&conn_seq, 1) + 1;
}

static __always_inline __u64 wake_flags(__u64 size)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	return avail + size >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void fill_header(struct event *ev, __u8 kind, __u64 ts, __u64 conn_id, int fd, __u8 role,
					__u8 source, __u64 handle)
{
	__u64 id = bpf_get_current_pid_tgid();
	ev->ts_ns = ts;
	ev->conn_id = conn_id;
	ev->offset = 0;
	ev->handle = handle;
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->fd = fd;
	ev->len = 0;
	ev->kind = kind;
	ev->dir = 0;
	ev->source = source;
	ev->flags = 0;
	ev->role = role;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
}

static __always_inline void submit_flags(void *rec, __u64 size, __u64 flags)
{
	if (bpf_ringbuf_output(&events, rec, size, flags)) {
		count(COUNTER_RINGBUF_FULL, 1);
		count(COUNTER_RINGBUF_FULL_BYTES, size);
		return;
	}
	count(COUNTER_RECORDS, 1);
	count(COUNTER_BYTES, size);
}

static __always_inline void submit(void *rec, __u64 size)
{
	submit_flags(rec, size, wake_flags(size));
}

/* emit_open reports a connection that started being tracked, with the
 * addresses of the socket behind fd when it is known. */
__noinline int emit_open(struct conn_state *st, int fd, __u8 source, __u64 handle)
{
	if (!st)
		return 0;
	__u32 zero = 0;
	struct record *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 0;
	fill_header(&r->ev, KIND_OPEN, bpf_ktime_get_ns(), st->id, fd, st->role, source, handle);
	r->ev.len = sizeof(struct conn_info);
	__builtin_memset(&r->info, 0, sizeof(r->info));
	struct sock *sk = tcp_sock(fd_socket(fd));
	if (sk) {
		r->info.family = BPF_CORE_READ(sk, __sk_common.skc_family);
		r->info.local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
		r->info.remote_port = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
		if (r->info.family == AF_INET) {
			__be32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
			__be32 rem = BPF_CORE_READ(sk, __sk_common.skc_daddr);
			__builtin_memcpy(r->info.local_addr, &l, 4);
			__builtin_memcpy(r->info.remote_addr, &rem, 4);
		} else {
			BPF_CORE_READ_INTO(&r->info.local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
			BPF_CORE_READ_INTO(&r->info.remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		}
	}
	submit(r, sizeof(struct event) + sizeof(struct conn_info));
	return 0;
}

static __always_inline void emit_close(struct conn_state *st, int fd, __u8 source, __u64 handle)
{
	__u32 zero = 0;
	struct record *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return;
	fill_header(&r->ev, KIND_CLOSE, bpf_ktime_get_ns(), st->id, fd, st->role, source, handle);
	submit(r, sizeof(struct event));
}

/* emit_notice tells userspace of a process to look at for TLS libraries;
 * it wakes the reader, because probing the process is urgent. */
static __always_inline void emit_notice(__u8 kind)
{
	struct notice n = {.pid = bpf_get_current_pid_tgid() >> 32, .kind = kind};
	if (bpf_ringbuf_output(&notices, &n, sizeof(n), BPF_RB_FORCE_WAKEUP))
		count(COUNTER_NOTICES_LOST, 1);
}

/* forget_fd drops the syscall state of an fd that was closed or replaced,
 * and ends the TLS connection riding on it. */
static __always_inline void forget_fd(struct conn_key *k)
{
	struct conn_state *st = bpf_map_lookup_elem(&conns, k);
	if (!st) {
		bpf_map_delete_elem(&skip, k);
		return;
	}
	if (st->verdict == V_TRACK)
		emit_close(st, k->fd, SOURCE_SYSCALL, k->fd);
	if (st->verdict == V_TLS && st->tls) {
		struct tls_key tk = {.tgid = k->tgid, .ssl = st->tls};
		struct conn_state *ts = bpf_map_lookup_elem(&tls_conns, &tk);
		if (ts && ts->fd == k->fd) {
			if (ts->verdict == V_TRACK)
				emit_close(ts, k->fd, ts->source, st->tls);
			bpf_map_delete_elem(&tls_conns, &tk);
		}
	}
	bpf_map_delete_elem(&conns, k);
}

/* conn_lookup finds the state of (tgid, fd), creating it the first time a
 * TCP socket is seen; NULL means the fd is not worth following. A state
 * whose socket is no longer the one behind fd (dup2, close_range, exec,
 * anything that replaced the fd without close) is dropped first. */
static __always_inline struct conn_state *conn_lookup(struct conn_key *k)
{
	struct conn_state *st = bpf_map_lookup_elem(&conns, k);
	if (!st && bpf_map_lookup_elem(&skip, k))
		return 0;
	struct sock *sk = tcp_sock(fd_socket(k->fd));
	if (st) {
		if (st->sk == (__u64)sk)
			return st;
		count(COUNTER_FD_REUSED, 1);
		forget_fd(k);
	}
	if (!sk) {
		skip_fd(k);
		return 0;
	}
	struct conn_state init = {.sk = (__u64)sk, .fd = k->fd};
	if (bpf_map_update_elem(&conns, k, &init, BPF_NOEXIST)) {
		st = bpf_map_lookup_elem(&conns, k);
		if (!st)
			count(COUNTER_CONN_MAP_FULL, 1);
		return st;
	}
	return bpf_map_lookup_elem(&conns, k);
}

/* conn_reset starts a fresh state for a socket that was just connected or
 * accepted, whatever the fd number was used for before. */
static __always_inline void conn_reset(__u32 tgid, int fd, __u8 role)
{
	if (tgid == self_tgid)
		return;
	struct conn_key k = {.tgid = tgid, .fd = fd};
	forget_fd(&k);
	bpf_map_delete_elem(&skip, &k);
	struct sock *sk = tcp_sock(fd_socket(fd));
	if (!sk) {
		skip_fd(&k);
		return;
	}
	struct conn_state init = {.role = role, .fresh = 1, .sk = (__u64)sk, .fd = fd};
	if (bpf_map_update_elem(&conns, &k, &init, BPF_ANY))
		count(COUNTER_CONN_MAP_FULL, 1);
}

/* request_path returns where the path starts when buf holds an HTTP request
 * line's method, else 0. */
static __always_inline int request_path(const char *b)
{
	if (b[0] == 'P' && b[1] == 'O' && b[2] == 'S' && b[3] == 'T' && b[4] == ' ')
		return 5;
	if (b[0] == 'G' && b[1] == 'E' && b[2] == 'T' && b[3] == ' ')
		return 4;
	if (b[0] == 'P' && b[1] == 'U' && b[2] == 'T' && b[3] == ' ')
		return 4;
	if (b[0] == 'P' && b[1] == 'A' && b[2] == 'T' && b[3] == 'C' && b[4] == 'H' && b[5] == ' ')
		return 6;
	if (b[0] == 'D' && b[1] == 'E' && b[2] == 'L' && b[3] == 'E' && b[4] == 'T' && b[5] == 'E' && b[6] == ' ')
		return 7;
	if (b[0] == 'H' && b[1] == 'E' && b[2] == 'A' && b[3] == 'D' && b[4] == ' ')
		return 5;
	if (b[0] == 'O' && b[1] == 'P' && b[2] == 'T' && b[3] == 'I' && b[4] == 'O' && b[5] == 'N' && b[6] == 'S' && b[7] == ' ')
		return 8;
	return 0;
}

/* tls_record says whether b starts a TLS record: a content type from
 * change_cipher_spec to application_data and a 3.x version. */
static __always_inline bool tls_record(const char *b)
{
	return (__u8)b[0] >= 0x14 && (__u8)b[0] <= 0x17 && b[1] == 0x03 && (__u8)b[2] <= 0x04;
}

static __always_inline bool llm_path(__u64 ptr, int off, __s64 ret)
{
	__u64 path[PREFIX_MAX / 8] = {};
	__u64 n = (__u64)ret - off;
	if (n > PREFIX_MAX)
		n = PREFIX_MAX;
	if (bpf_probe_read_user(path, n, (void *)(ptr + off)))
		return false;
	for (__u32 i = 0; i < PREFIXES_MAX; i++) {
		__u32 idx = i;
		struct path_prefix *p = bpf_map_lookup_elem(&llm_paths, &idx);
		if (!p || p->len == 0)
			return false;
		if (p->len > n)
			continue;
		bool match = true;
		for (int w = 0; w < PREFIX_MAX / 8; w++) {
			if ((path[w] & p->mask[w]) != p->word[w])
				match = false;
		}
		if (match)
			return true;
	}
	return false;
}

static __always_inline bool llm_port(int fd, __u8 *role)
{
	struct sock *sk = tcp_sock(fd_socket(fd));
	if (!sk)
		return false;
	__u16 local = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 remote = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (bpf_map_lookup_elem(&llm_ports, &remote)) {
		*role = ROLE_CLIENT;
		return true;
	}
	if (bpf_map_lookup_elem(&llm_ports, &local)) {
		*role = ROLE_SERVER;
		return true;
	}
	return false;
}

enum classified {
	C_WAIT = 0,    /* not now: keep looking at later buffers */
	C_TRACK = 1,   /* tracked from this buffer on */
	C_DISMISS = 2, /* never LLM traffic: stop looking */
	C_TLS = 3,     /* TLS records: the TLS probes carry the plaintext */
};

/* A buffer to classify: fd is the socket, or -1 for a TLS connection whose
 * socket is not known yet. */
struct peek {
	__u64 ptr;
	__s64 len;
	__s32 fd;
	__u8 dir;
	__u8 source;
	__u8 pad[2];
};

/* classify looks at the first bytes of a plaintext buffer on an undecided
 * connection. It is a global function so that the verifier checks it once,
 * not once per program that calls it. */
__noinline int classify(struct conn_state *st, struct peek *pk)
{
	if (!st || !pk || pk->len <= 0)
		return C_WAIT;
	__u64 ptr = pk->ptr;
	__s64 ret = pk->len;
	int fd = pk->fd;
	__u8 dir = pk->dir;
	char head[PEEK] = {};
	__u64 n = (__u64)ret;
	if (n > PEEK)
		n = PEEK;
	if (bpf_probe_read_user(head, n, (void *)ptr))
		return C_WAIT;

	if (pk->source == SOURCE_SYSCALL && n >= 3 && tls_record(head))
		return C_TLS;

	__u8 role = st->role;
	int off = request_path(head);
	bool track = false;
	if (!off && head[0] == 'P' && head[1] == 'R' && head[2] == 'I' && head[3] == ' ' && head[4] == '*' &&
	    head[5] == ' ' && head[6] == 'H' && head[7] == 'T') {
		/* The HTTP/2 client preface: whether the connection carries LLM
		 * calls is in HPACK-coded headers, for userspace to say. */
		if (role == ROLE_UNKNOWN)
			role = dir == DIR_EGRESS ? ROLE_CLIENT : ROLE_SERVER;
		st->h2 = 1;
		track = true;
	} else if (off) {
		if (role == ROLE_UNKNOWN)
			role = dir == DIR_EGRESS ? ROLE_CLIENT : ROLE_SERVER;
		track = llm_path(ptr, off, ret);
		/* A connection in RECHECK already failed the port test. */
		if (!track && (st->verdict == V_RECHECK || !llm_port(fd, &role))) {
			st->verdict = V_RECHECK;
			st->role = role;
			return C_WAIT;
		}
		track = true;
	} else if (st->verdict == V_UNKNOWN && llm_port(fd, &role)) {
		if (st->role != ROLE_UNKNOWN)
			role = st->role;
		track = true;
	}
	if (!track && st->verdict == V_UNKNOWN && head[0] == 'H' && head[1] == 'T' && head[2] == 'T' && head[3] == 'P' &&
	    head[4] == '/' && head[5] == '1' && head[6] == '.') {
		/* A response first: the observer started while a keep-alive
		 * connection was mid-exchange. Its next request decides. */
		count(COUNTER_JOINED_MIDWAY, 1);
		st->verdict = V_RECHECK;
		st->role = dir == DIR_EGRESS ? ROLE_SERVER : ROLE_CLIENT;
		return C_WAIT;
	}
	if (!track) {
		/* A connection that predates the observer may be seen first in
		 * the middle of a body: give it a few buffers to start a request
		 * before dismissing it. */
		if (st->verdict == V_UNKNOWN && (st->fresh || ++st->strikes >= STRIKES_MAX))
			return C_DISMISS;
		return C_WAIT;
	}
	st->verdict = V_TRACK;
	st->role = role;
	st->id = new_conn_id();
	st->bytes[0] = 0;
	st->bytes[1] = 0;
	st->lost[0] = 0;
	st->lost[1] = 0;
	count(COUNTER_CONNS_TRACKED, 1);
	return C_TRACK;
}

struct emit_ctx {
	__u64 ts;
	__u64 conn_id;
	__u64 offset;
	__u64 handle;
	__s32 fd;
	__u8 dir;
	__u8 role;
	__u8 source;
	__u8 flags; /* set on the first record only */
};

/* emit_buf copies len bytes at ptr into ring records of at most CHUNK_MAX,
 * advancing ec->offset past all len bytes, copied or not, so that the reader
 * sees exactly where bytes are missing. */
__noinline int emit_buf(struct emit_ctx *ec, __u64 ptr, __u64 len)
{
	if (!ec)
		return 0;
	__u32 zero = 0;
	struct record *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 0;
	for (int i = 0; i < CHUNKS_PER_BUF; i++) {
		if (len == 0)
			return 0;
		__u64 n = len > CHUNK_MAX ? CHUNK_MAX : len;
		fill_header(&r->ev, KIND_DATA, ec->ts, ec->conn_id, ec->fd, ec->role, ec->source, ec->handle);
		r->ev.offset = ec->offset;
		r->ev.dir = ec->dir;
		r->ev.flags = ec->flags;
		ec->flags = 0;
		if (i == CHUNKS_PER_BUF - 1 && len > n)
			r->ev.flags |= FLAG_TRUNCATED;
		if (bpf_probe_read_user(r->data, n, (void *)ptr)) {
			count(COUNTER_READ_FAULTS, 1);
			r->ev.flags |= FLAG_FAULT;
			r->ev.len = 0;
			submit(r, sizeof(struct event));
		} else {
			r->ev.len = n;
			submit(r, sizeof(struct event) + n);
		}
		ec->offset += n;
		ptr += n;
		len -= n;
	}
	if (len) {
		count(COUNTER_TRUNCATED_BUFFERS, 1);
		count(COUNTER_TRUNCATED_BYTES, len);
		ec->offset += len;
	}
	return 0;
}

/* h2_dropped applies userspace's verdict on an HTTP/2 connection still
 * waiting for one, and says whether its bytes must no longer go up. */
static __always_inline bool h2_dropped(struct conn_state *st)
{
	if (!st->h2)
		return false;
	__u8 *v = bpf_map_lookup_elem(&verdicts, &st->id);
	if (!v)
		return false;
	bool drop = *v == VERDICT_DROP;
	bpf_map_delete_elem(&verdicts, &st->id);
	st->h2 = 0;
	if (drop)
		count(COUNTER_VERDICT_DROPPED, 1);
	return drop;
}

/* start_emit fills ec for len bytes of a tracked connection and reserves
 * their offsets. */
static __always_inline void start_emit(struct emit_ctx *ec, struct conn_state *st, __u8 dir, __u64 ts, __u64 len)
{
	dir &= 1;
	ec->ts = ts;
	ec->conn_id = st->id;
	ec->offset = __sync_fetch_and_add(&st->bytes[dir], len);
	ec->dir = dir;
	ec->role = st->role;
	ec->flags = 0;
	if (st->lost[dir]) {
		st->lost[dir] = 0;
		ec->flags = FLAG_LOST;
	}
}

/* mark_lost notes that bytes of a direction went missing before the next
 * record, when an in-flight map had no room for a call's arguments. */
static __always_inline void mark_lost(struct conn_state *st, __u8 dir)
{
	if (st && st->verdict == V_TRACK)
		st->lost[dir & 1] = 1;
}

/* ---- TLS source ---- */

static __always_inline bool tls_followed(__u32 tgid)
{
	if (tgid == self_tgid)
		return false;
	if (tls_filter && !bpf_map_lookup_elem(&tls_allow, &tgid))
		return false;
	return true;
}

/* tls_bind attaches a TLS connection to its socket: the socket's state
 * learns which SSL* carries its plaintext (so a close ends it), and the TLS
 * state learns the fd (for addresses and ports). A connection already
 * tracked on another socket is a new connection reusing the SSL*. */
static __always_inline void tls_bind(struct tls_key *tk, struct conn_state *ts, int fd)
{
	if (fd < 0 || ts->fd == fd)
		return;
	if (ts->fd >= 0 && ts->verdict == V_TRACK) {
		emit_close(ts, ts->fd, ts->source, tk->ssl);
		ts->verdict = V_UNKNOWN;
		ts->strikes = 0;
	}
	ts->fd = fd;
	struct conn_key k = {.tgid = tk->tgid, .fd = fd};
	struct conn_state *st = bpf_map_lookup_elem(&conns, &k);
	if (st && st->verdict == V_TLS)
		st->tls = tk->ssl;
	if (ts->verdict == V_TRACK)
		emit_open(ts, fd, ts->source, tk->ssl);
}

/* Plaintext moved by one TLS call; fd is its socket, or -1. */
struct tls_data {
	__u64 buf;
	__u64 len;
	__u64 ts;
	__s32 fd;
	__u8 dir;
	__u8 source;
	__u8 pad[2];
};

/* tls_emit classifies and sends the plaintext of one TLS call. */
__noinline int tls_emit(struct tls_key *tk, struct tls_data *d)
{
	if (!tk || !d || d->len == 0)
		return 0;
	__u64 buf = d->buf, len = d->len;
	__u8 dir = d->dir;
	struct conn_state *st = bpf_map_lookup_elem(&tls_conns, tk);
	if (!st) {
		struct conn_state init = {.fd = -1, .source = d->source};
		if (bpf_map_update_elem(&tls_conns, tk, &init, BPF_NOEXIST) && !bpf_map_lookup_elem(&tls_conns, tk)) {
			count(COUNTER_CONN_MAP_FULL, 1);
			return 0;
		}
		st = bpf_map_lookup_elem(&tls_conns, tk);
		if (!st)
			return 0;
	}
	if (st->verdict == V_IGNORE)
		return 0;
	tls_bind(tk, st, d->fd);
	if (st->verdict != V_TRACK) {
		struct peek pk = {.ptr = buf, .len = len, .fd = st->fd, .dir = dir, .source = st->source};
		int c = classify(st, &pk);
		if (c == C_DISMISS)
			st->verdict = V_IGNORE;
		if (c != C_TRACK)
			return 0;
		emit_open(st, st->fd, st->source, tk->ssl);
	}
	if (h2_dropped(st)) {
		emit_close(st, st->fd, st->source, tk->ssl);
		st->verdict = V_IGNORE;
		return 0;
	}
	if (st->fd < 0)
		count(COUNTER_TLS_NO_SOCKET, 1);
	struct emit_ctx ec = {.fd = st->fd, .source = st->source, .handle = tk->ssl};
	start_emit(&ec, st, dir, d->ts, len);
	emit_buf(&ec, buf, len);
	return 0;
}

/* tls_socket_io runs for each system call on a TLS socket: inside a TLS
 * call it tells that call its socket; outside, it remembers the socket a
 * thread reads, and sends a plaintext write waiting for its socket. */
static __always_inline void tls_socket_io(struct conn_key *k, struct conn_state *st, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *c = bpf_map_lookup_elem(&tls_calls, &id);
	if (c) {
		if (c->fd < 0)
			c->fd = k->fd;
		return;
	}
	struct tls_thread *t = bpf_map_lookup_elem(&tls_threads, &id);
	if (dir == DIR_INGRESS) {
		if (t) {
			t->last_in_fd = k->fd;
		} else {
			struct tls_thread init = {.last_in_fd = k->fd};
			bpf_map_update_elem(&tls_threads, &id, &init, BPF_ANY);
		}
		return;
	}
	if (!t || !t->defer_ssl)
		return;
	struct tls_key tk = {.tgid = k->tgid, .ssl = t->defer_ssl};
	struct tls_data d = {.buf = t->defer_buf, .len = t->defer_len, .ts = t->defer_ts, .fd = k->fd, .dir = DIR_EGRESS, .source = SOURCE_OPENSSL};
	t->defer_ssl = 0;
	tls_emit(&tk, &d);
}

/* tls_noticed reports, once per process, a process whose TLS connections
 * no probe follows yet, so userspace looks for its TLS library. */
static __always_inline void tls_noticed(__u32 tgid)
{
	if (bpf_map_lookup_elem(&tls_seen, &tgid))
		return;
	__u8 one = 1;
	bpf_map_update_elem(&tls_seen, &tgid, &one, BPF_ANY);
	emit_notice(KIND_TLS_SEEN);
}

static __always_inline int tls_enter(struct pt_regs *ctx, __u8 dir, bool ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (!tls_followed(tgid))
		return 0;
	count(COUNTER_TLS_CALLS, 1);
	struct tls_call c = {
		.ssl = ctx->di,
		.buf = ctx->si,
		.len_ptr = ex ? ctx->cx : 0,
		.ts_ns = bpf_ktime_get_ns(),
		.fd = -1,
		.dir = dir,
	};
	if (bpf_map_update_elem(&tls_calls, &id, &c, BPF_ANY)) {
		count(COUNTER_TLS_CALL_MAP_FULL, 1);
		struct tls_key tk = {.tgid = tgid, .ssl = ctx->di};
		mark_lost(bpf_map_lookup_elem(&tls_conns, &tk), dir);
	}
	return 0;
}

static __always_inline int tls_exit(struct pt_regs *ctx, bool ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *saved = bpf_map_lookup_elem(&tls_calls, &id);
	if (!saved)
		return 0;
	struct tls_call c = *saved;
	bpf_map_delete_elem(&tls_calls, &id);
	/* The functions return int: the upper half of ax is not theirs. */
	__s64 ret = (int)ctx->ax;
	__u64 len = 0;
	if (ex) {
		if (ret != 1 || !c.len_ptr)
			return 0;
		if (bpf_probe_read_user(&len, sizeof(len), (void *)c.len_ptr))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		len = ret;
	}
	struct tls_key tk = {.tgid = id >> 32, .ssl = c.ssl};
	int fd = c.fd;
	__u64 ts = c.dir == DIR_EGRESS ? c.ts_ns : bpf_ktime_get_ns();
	if (fd < 0) {
		struct conn_state *st = bpf_map_lookup_elem(&tls_conns, &tk);
		if (st)
			fd = st->fd;
	}
	if (fd < 0) {
		struct tls_thread *t = bpf_map_lookup_elem(&tls_threads, &id);
		if (c.dir == DIR_INGRESS) {
			if (t)
				fd = t->last_in_fd;
		} else {
			/* The stack writes the records itself, right after this
			 * call: send the plaintext with the next socket write. A
			 * write still waiting goes now, without its socket. */
			if (t && t->defer_ssl) {
				struct tls_key old = {.tgid = tk.tgid, .ssl = t->defer_ssl};
				struct tls_data d = {.buf = t->defer_buf, .len = t->defer_len, .ts = t->defer_ts, .fd = -1, .dir = DIR_EGRESS, .source = SOURCE_OPENSSL};
				t->defer_ssl = 0;
				tls_emit(&old, &d);
			}
			struct tls_thread init = {.last_in_fd = -1};
			if (!t) {
				bpf_map_update_elem(&tls_threads, &id, &init, BPF_ANY);
				t = bpf_map_lookup_elem(&tls_threads, &id);
			}
			if (t) {
				t->defer_ssl = c.ssl;
				t->defer_buf = c.buf;
				t->defer_len = len;
				t->defer_ts = ts;
				return 0;
			}
		}
	}
	struct tls_data d = {.buf = c.buf, .len = len, .ts = ts, .fd = fd, .dir = c.dir, .source = SOURCE_OPENSSL};
	tls_emit(&tk, &d);
	return 0;
}

SEC("uprobe")
int ssl_write_enter(struct pt_regs *ctx) { return tls_enter(ctx, DIR_EGRESS, false); }

SEC("uprobe")
int ssl_write_ex_enter(struct pt_regs *ctx) { return tls_enter(ctx, DIR_EGRESS, true); }

SEC("uprobe")
int ssl_read_enter(struct pt_regs *ctx) { return tls_enter(ctx, DIR_INGRESS, false); }

SEC("uprobe")
int ssl_read_ex_enter(struct pt_regs *ctx) { return tls_enter(ctx, DIR_INGRESS, true); }

SEC("uretprobe")
int ssl_exit(struct pt_regs *ctx) { return tls_exit(ctx, false); }

SEC("uretprobe")
int ssl_ex_exit(struct pt_regs *ctx) { return tls_exit(ctx, true); }

/* ---- Go crypto/tls source ---- */

/* Where the socket is in a Go program's memory, per probed executable (the
 * uprobe's attach cookie is the index): *tls.Conn -> its conn field, a
 * net.Conn interface whose data word is a *net.TCPConn -> netFD pointer ->
 * poll.FD.Sysfd. Offsets come from DWARF or a table by Go version. */
struct go_offsets {
	__u64 conn_data;  /* offset of tls.Conn.conn's data word */
	__u64 netfd;      /* offset of the *netFD in net.TCPConn (its conn.fd) */
	__u64 sysfd;      /* offset of pfd.Sysfd in netFD */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct go_offsets);
} go_layouts SEC(".maps");

/* In a Go call's len_ptr: the buffer is on the goroutine's stack, at this
 * distance below its top. */
#define GO_STACK_BUF (1ULL << 63)

/* Go TLS calls in flight, by goroutine: goroutines move between threads,
 * and a uretprobe would corrupt Go's moving stacks, so the return is seen
 * at each RET instruction of the function, on whichever thread runs it. */
struct go_call_key {
	__u32 tgid;
	__u32 pad;
	__u64 g;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_call_key);
	__type(value, struct tls_call);
} go_calls SEC(".maps");

static __always_inline int go_socket(struct go_offsets *o, __u64 conn)
{
	__u64 data = 0, netfd = 0;
	__s64 fd = -1;
	if (bpf_probe_read_user(&data, sizeof(data), (void *)(conn + o->conn_data)) || !data)
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(data + o->netfd)) || !netfd)
		return -1;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(netfd + o->sysfd)))
		return -1;
	return fd < 0 || fd > 0x7fffffff ? -1 : (int)fd;
}

/* Register ABI (Go 1.17+): the receiver in RAX, the slice's pointer and
 * length in RBX and RCX, the current goroutine in R14. */
static __always_inline int go_enter(struct pt_regs *ctx, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (!tls_followed(tgid))
		return 0;
	__u32 idx = (__u32)bpf_get_attach_cookie(ctx);
	struct go_offsets *o = bpf_map_lookup_elem(&go_layouts, &idx);
	if (!o)
		return 0;
	count(COUNTER_TLS_CALLS, 1);
	struct go_call_key k = {.tgid = tgid, .g = ctx->r14};
	struct tls_call c = {
		.ssl = ctx->ax,
		.buf = ctx->bx,
		.ts_ns = bpf_ktime_get_ns(),
		.fd = go_socket(o, ctx->ax),
		.dir = dir,
	};
	/* A buffer on the goroutine's own stack moves if the stack grows
	 * while the call waits: keep it as a distance from the stack's top
	 * (g.stack.hi), found again at the return. */
	__u64 stack[2] = {};
	if (!bpf_probe_read_user(stack, sizeof(stack), (void *)ctx->r14) && c.buf >= stack[0] && c.buf < stack[1])
		c.len_ptr = GO_STACK_BUF | (stack[1] - c.buf);
	if (bpf_map_update_elem(&go_calls, &k, &c, BPF_ANY)) {
		count(COUNTER_TLS_CALL_MAP_FULL, 1);
		struct tls_key tk = {.tgid = tgid, .ssl = ctx->ax};
		mark_lost(bpf_map_lookup_elem(&tls_conns, &tk), dir);
	}
	return 0;
}

/* At a RET: n in RAX (the bytes moved even when an error comes with them). */
static __always_inline int go_exit(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_call_key k = {.tgid = id >> 32, .g = ctx->r14};
	struct tls_call *saved = bpf_map_lookup_elem(&go_calls, &k);
	if (!saved)
		return 0;
	struct tls_call c = *saved;
	bpf_map_delete_elem(&go_calls, &k);
	__s64 n = ctx->ax;
	if (n <= 0)
		return 0;
	if (c.len_ptr & GO_STACK_BUF) {
		__u64 hi = 0;
		if (bpf_probe_read_user(&hi, sizeof(hi), (void *)(ctx->r14 + 8)))
			return 0;
		c.buf = hi - (c.len_ptr & ~GO_STACK_BUF);
	}
	struct tls_key tk = {.tgid = k.tgid, .ssl = c.ssl};
	struct tls_data d = {
		.buf = c.buf,
		.len = n,
		.ts = c.dir == DIR_EGRESS ? c.ts_ns : bpf_ktime_get_ns(),
		.fd = c.fd,
		.dir = c.dir,
		.source = SOURCE_GOTLS,
	};
	tls_emit(&tk, &d);
	return 0;
}

SEC("uprobe")
int gotls_write_enter(struct pt_regs *ctx) { return go_enter(ctx, DIR_EGRESS); }

SEC("uprobe")
int gotls_read_enter(struct pt_regs *ctx) { return go_enter(ctx, DIR_INGRESS); }

SEC("uprobe")
int gotls_exit(struct pt_regs *ctx) { return go_exit(ctx); }

/* ---- syscall source ---- */

static __always_inline int io_enter(__u64 fd_arg, __u64 buf, __u64 iovcnt, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_key k = {.tgid = id >> 32, .fd = (__s32)fd_arg};
	if (k.tgid == self_tgid)
		return 0;
	struct conn_state *st = conn_lookup(&k);
	if (!st)
		return 0;
	if (st->verdict == V_TLS) {
		tls_socket_io(&k, st, dir);
		return 0;
	}
	/* On a connection waiting for an LLM request, responses cannot start
	 * one: leave them without saving anything for the exit. */
	if (st->verdict == V_RECHECK && st->role != ROLE_UNKNOWN &&
	    dir == (st->role == ROLE_CLIENT ? DIR_INGRESS : DIR_EGRESS))
		return 0;
	struct io_args a = {
		.ts_ns = bpf_ktime_get_ns(),
		.buf = buf,
		.iovcnt = iovcnt,
		.fd = k.fd,
		.dir = dir,
	};
	if (task_storage) {
		struct io_args *slot = bpf_task_storage_get(&active_task, bpf_get_current_task_btf(), 0,
							    BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!slot) {
			/* No memory, or another program of this thread holds
			 * the storage's lock: the call goes unseen. */
			count(COUNTER_ACTIVE_MAP_FULL, 1);
			mark_lost(st, dir);
			return 0;
		}
		a.busy = 1;
		*slot = a;
		return 0;
	}
	if (bpf_map_update_elem(&active, &id, &a, BPF_ANY)) {
		count(COUNTER_ACTIVE_MAP_FULL, 1);
		mark_lost(st, dir);
	}
	return 0;
}

static __always_inline int msg_enter(__u64 fd_arg, __u64 msg, __u8 dir)
{
	struct user_msghdr h = {};
	if (bpf_probe_read_user(&h, sizeof(h), (void *)msg))
		return 0;
	if (!h.msg_iov || !h.msg_iovlen)
		return 0;
	return io_enter(fd_arg, (__u64)h.msg_iov, h.msg_iovlen, dir);
}

static __always_inline int io_exit(struct syscall_exit_args *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct io_args a;
	if (task_storage) {
		struct io_args *slot = bpf_task_storage_get(&active_task, bpf_get_current_task_btf(), 0, 0);
		if (!slot || !slot->busy)
			return 0;
		a = *slot;
		slot->busy = 0;
	} else {
		struct io_args *saved = bpf_map_lookup_elem(&active, &id);
		if (!saved)
			return 0;
		a = *saved;
		bpf_map_delete_elem(&active, &id);
	}
	__s64 ret = ctx->ret;
	if (ret <= 0)
		return 0;
	struct conn_key k = {.tgid = id >> 32, .fd = a.fd};
	struct conn_state *st = bpf_map_lookup_elem(&conns, &k);
	if (!st)
		return 0;
	if (st->verdict != V_TRACK) {
		__u64 ptr = a.buf;
		__s64 n = ret;
		if (a.iovcnt) {
			struct iovec iov = {};
			if (bpf_probe_read_user(&iov, sizeof(iov), (void *)a.buf))
				return 0;
			ptr = (__u64)iov.iov_base;
			if (iov.iov_len < (__u64)n)
				n = iov.iov_len;
		}
		struct peek pk = {.ptr = ptr, .len = n, .fd = k.fd, .dir = a.dir, .source = SOURCE_SYSCALL};
		int c = classify(st, &pk);
		if (c == C_TLS) {
			st->verdict = V_TLS;
			tls_socket_io(&k, st, a.dir);
			tls_noticed(k.tgid);
			return 0;
		}
		if (c == C_DISMISS) {
			bpf_map_delete_elem(&conns, &k);
			skip_fd(&k);
		}
		if (c != C_TRACK)
			return 0;
		emit_open(st, k.fd, SOURCE_SYSCALL, k.fd);
	} else if (h2_dropped(st)) {
		emit_close(st, k.fd, SOURCE_SYSCALL, k.fd);
		bpf_map_delete_elem(&conns, &k);
		skip_fd(&k);
		return 0;
	}

	struct emit_ctx ec = {.fd = a.fd, .source = SOURCE_SYSCALL, .handle = (__u64)a.fd};
	start_emit(&ec, st, a.dir, a.dir == DIR_EGRESS ? a.ts_ns : bpf_ktime_get_ns(), ret);
	if (!a.iovcnt) {
		emit_buf(&ec, a.buf, ret);
		return 0;
	}
	__u64 left = ret;
	for (__u32 i = 0; i < IOVS_MAX; i++) {
		if (i >= a.iovcnt || left == 0)
			break;
		struct iovec iov = {};
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(a.buf + i * sizeof(struct iovec)))) {
			count(COUNTER_READ_FAULTS, 1);
			break;
		}
		__u64 n = iov.iov_len < left ? iov.iov_len : left;
		emit_buf(&ec, (__u64)iov.iov_base, n);
		left -= n;
	}
	if (left) {
		count(COUNTER_TRUNCATED_BUFFERS, 1);
		count(COUNTER_TRUNCATED_BYTES, left);
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int enter_write(struct syscall_enter_args *ctx)
{
	return io_enter(ctx->args[0], ctx->args[1], 0, DIR_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int enter_sendto(struct syscall_enter_args *ctx)
{
	return io_enter(ctx->args[0], ctx->args[1], 0, DIR_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int enter_writev(struct syscall_enter_args *ctx)
{
	return io_enter(ctx->args[0], ctx->args[1], ctx->args[2], DIR_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int enter_sendmsg(struct syscall_enter_args *ctx)
{
	return msg_enter(ctx->args[0], ctx->args[1], DIR_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_read")
int enter_read(struct syscall_enter_args *ctx)
{
	return io_enter(ctx->args[0], ctx->args[1], 0, DIR_INGRESS);
}

/* A peek leaves the bytes queued: the read that consumes them records them,
 * once, at their offset. */
SEC("tracepoint/syscalls/sys_enter_recvfrom")
int enter_recvfrom(struct syscall_enter_args *ctx)
{
	if (ctx->args[3] & MSG_PEEK)
		return 0;
	return io_enter(ctx->args[0], ctx->args[1], 0, DIR_INGRESS);
}

SEC("tracepoint/syscalls/sys_enter_readv")
int enter_readv(struct syscall_enter_args *ctx)
{
	return io_enter(ctx->args[0], ctx->args[1], ctx->args[2], DIR_INGRESS);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int enter_recvmsg(struct syscall_enter_args *ctx)
{
	if (ctx->args[2] & MSG_PEEK)
		return 0;
	return msg_enter(ctx->args[0], ctx->args[1], DIR_INGRESS);
}

SEC("tracepoint/syscalls/sys_exit_write")
int exit_write(struct syscall_exit_args *ctx) { return io_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_sendto")
int exit_sendto(struct syscall_exit_args *ctx) { return io_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_writev")
int exit_writev(struct syscall_exit_args *ctx) { return io_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int exit_sendmsg(struct syscall_exit_args *ctx) { return io_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_read")
int exit_read(struct syscall_exit_args *ctx) { return io_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int exit_recvfrom(struct syscall_exit_args *ctx) { return io_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_readv")
int exit_readv(struct syscall_exit_args *ctx) { return io_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int exit_recvmsg(struct syscall_exit_args *ctx) { return io_exit(ctx); }

SEC("tracepoint/syscalls/sys_enter_connect")
int enter_connect(struct syscall_enter_args *ctx)
{
	conn_reset(bpf_get_current_pid_tgid() >> 32, (int)ctx->args[0], ROLE_CLIENT);
	return 0;
}

static __always_inline int accept_exit(struct syscall_exit_args *ctx)
{
	if (ctx->ret >= 0)
		conn_reset(bpf_get_current_pid_tgid() >> 32, (int)ctx->ret, ROLE_SERVER);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int exit_accept4(struct syscall_exit_args *ctx) { return accept_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_accept")
int exit_accept(struct syscall_exit_args *ctx) { return accept_exit(ctx); }

SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct syscall_enter_args *ctx)
{
	struct conn_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = (__s32)ctx->args[0]};
	forget_fd(&k);
	return 0;
}

/* dup2 and dup3 close their target fd without a close call. */
SEC("tracepoint/syscalls/sys_enter_dup2")
int enter_dup2(struct syscall_enter_args *ctx)
{
	struct conn_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = (__s32)ctx->args[1]};
	forget_fd(&k);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_dup3")
int enter_dup3(struct syscall_enter_args *ctx)
{
	struct conn_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = (__s32)ctx->args[1]};
	forget_fd(&k);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int process_exec(struct sched_process_exec_args *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == self_tgid)
		return 0;
	bpf_map_delete_elem(&tls_seen, &tgid);
	emit_notice(KIND_EXEC);
	return 0;
}
