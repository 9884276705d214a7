// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Kernel side of llm-observer: syscall tracepoints that find the TCP
 * connections carrying LLM API traffic and copy both directions of them into
 * one ring buffer. Everything else leaves after one or two map look-ups.
 *
 * Per connection (tgid, fd) the state moves UNKNOWN -> TRACK | RECHECK |
 * dropped: the first bytes decide. An HTTP request line whose path starts
 * with a configured LLM prefix (or a configured port) means TRACK; any other
 * HTTP request means RECHECK, where each later buffer is peeked for a request
 * line, because keep-alive clients reuse a connection for /api/tags and then
 * /api/chat; anything else goes to the skip cache. A connection that was
 * open before the observer started may first be seen mid-message, so it gets
 * a few buffers (or a response start, which means RECHECK) to show a request.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CHUNK_MAX 16384	  /* bytes of payload per ring record */
#define CHUNKS_PER_BUF 8  /* so at most 128 KiB of one buffer is copied */
#define IOVS_MAX 8	  /* iovecs looked at in readv/writev/msghdr */
#define PREFIX_MAX 48	  /* longest configurable path prefix */
#define PREFIXES_MAX 16	  /* configurable path prefixes */
#define PEEK 8		  /* bytes read to recognise a request method */
#define STRIKES_MAX 64	  /* buffers an older connection gets to show a request */
#define MSG_PEEK 2	  /* recv flag: the bytes stay queued for the next read */

enum verdict {
	V_UNKNOWN = 0,
	V_TRACK = 1,
	V_RECHECK = 2,
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
};

enum event_source {
	SOURCE_SYSCALL = 0,
};

enum event_flag {
	/* Bytes of this buffer after this record were not copied. */
	FLAG_TRUNCATED = 1,
	/* The copy from user memory failed; the record holds no bytes. */
	FLAG_FAULT = 2,
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
	COUNTER_MAX,
};

/* Header of every ring record; KIND_DATA is followed by len payload bytes,
 * KIND_OPEN by a struct conn_info. */
struct event {
	__u64 ts_ns;   /* CLOCK_MONOTONIC: write entry, or read exit */
	__u64 conn_id; /* unique per tracked connection since load */
	__u64 offset;  /* byte offset of the payload in its direction */
	__u32 pid;
	__u32 tid;
	__s32 fd;
	__u32 len;
	__u8 kind;
	__u8 dir;
	__u8 source;
	__u8 flags;
	__u8 role;
	__u8 pad[3];
	char comm[16];
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

struct conn_state {
	__u64 id;
	__u64 bytes[2];
	__u8 verdict;
	__u8 role;
	__u8 fresh;   /* seen from connect/accept: its first bytes are a message start */
	__u8 strikes; /* buffers of an older connection that did not start a request */
	__u8 pad[4];
};

struct io_args {
	__u64 ts_ns;
	__u64 buf;    /* the buffer, or the iovec array when iovcnt > 0 */
	__u64 iovcnt;
	__s32 fd;
	__u8 dir;
	__u8 pad[3];
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

/* Force the generator to emit these types for Go. */
const struct event *unused_event __attribute__((unused));
const struct conn_info *unused_conn_info __attribute__((unused));
const struct path_prefix *unused_path_prefix __attribute__((unused));
const enum counter *unused_counter __attribute__((unused));
const enum event_kind *unused_event_kind __attribute__((unused));
const enum event_flag *unused_event_flag __attribute__((unused));
const enum role *unused_role __attribute__((unused));
const enum direction *unused_direction __attribute__((unused));

__u64 conn_seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Connections that are TCP and not yet dismissed. Not an LRU: a tracked
 * connection must not be evicted by unrelated churn; a full map is counted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, struct conn_key);
	__type(value, struct conn_state);
} conns SEC(".maps");

/* File descriptors known not to matter: files, pipes, UDP, non-HTTP TCP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, __u8);
} skip SEC(".maps");

/* Arguments saved at syscall entry for the exit, by thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct io_args);
} active SEC(".maps");

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

/* conn_lookup finds the state of (tgid, fd), creating it the first time a
 * TCP socket is seen; NULL means the fd is not worth following. */
static __always_inline struct conn_state *conn_lookup(struct conn_key *k)
{
	struct conn_state *st = bpf_map_lookup_elem(&conns, k);
	if (st)
		return st;
	if (bpf_map_lookup_elem(&skip, k))
		return 0;
	if (!tcp_sock(fd_socket(k->fd))) {
		skip_fd(k);
		return 0;
	}
	struct conn_state init = {};
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
	bpf_map_delete_elem(&skip, &k);
	if (!tcp_sock(fd_socket(fd))) {
		bpf_map_delete_elem(&conns, &k);
		skip_fd(&k);
		return;
	}
	struct conn_state init = {.role = role, .fresh = 1};
	if (bpf_map_update_elem(&conns, &k, &init, BPF_ANY))
		count(COUNTER_CONN_MAP_FULL, 1);
}

static __always_inline __u64 wake_flags(__u64 size)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	return avail + size >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void fill_header(struct event *ev, __u8 kind, __u64 ts, __u64 conn_id, int fd, __u8 role)
{
	__u64 id = bpf_get_current_pid_tgid();
	ev->ts_ns = ts;
	ev->conn_id = conn_id;
	ev->offset = 0;
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->fd = fd;
	ev->len = 0;
	ev->kind = kind;
	ev->dir = 0;
	ev->source = SOURCE_SYSCALL;
	ev->flags = 0;
	ev->role = role;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
}

static __always_inline void submit(void *rec, __u64 size)
{
	if (bpf_ringbuf_output(&events, rec, size, wake_flags(size))) {
		count(COUNTER_RINGBUF_FULL, 1);
		count(COUNTER_RINGBUF_FULL_BYTES, size);
		return;
	}
	count(COUNTER_RECORDS, 1);
	count(COUNTER_BYTES, size);
}

static __always_inline void emit_open(struct conn_state *st, int fd)
{
	__u32 zero = 0;
	struct record *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return;
	fill_header(&r->ev, KIND_OPEN, bpf_ktime_get_ns(), st->id, fd, st->role);
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

/* classify looks at the first bytes of a buffer on an undecided connection
 * and returns true when the connection is (now) tracked. */
static __always_inline bool classify(struct conn_key *k, struct conn_state *st, struct io_args *a, __s64 ret)
{
	__u64 ptr = a->buf;
	if (a->iovcnt) {
		struct iovec iov = {};
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)a->buf))
			return false;
		ptr = (__u64)iov.iov_base;
		if (iov.iov_len < (__u64)ret)
			ret = iov.iov_len;
	}
	char head[PEEK] = {};
	__u64 n = (__u64)ret;
	if (n > PEEK)
		n = PEEK;
	if (bpf_probe_read_user(head, n, (void *)ptr))
		return false;

	__u8 role = st->role;
	int off = request_path(head);
	bool track = false;
	if (off) {
		if (role == ROLE_UNKNOWN)
			role = a->dir == DIR_EGRESS ? ROLE_CLIENT : ROLE_SERVER;
		track = llm_path(ptr, off, ret);
		/* A connection in RECHECK already failed the port test. */
		if (!track && (st->verdict == V_RECHECK || !llm_port(k->fd, &role))) {
			st->verdict = V_RECHECK;
			st->role = role;
			return false;
		}
		track = true;
	} else if (st->verdict == V_UNKNOWN && llm_port(k->fd, &role)) {
		if (st->role != ROLE_UNKNOWN)
			role = st->role;
		track = true;
	}
	if (!track && st->verdict == V_UNKNOWN && head[0] == 'H' && head[1] == 'T' && head[2] == 'T' && head[3] == 'P' &&
	    head[4] == '/' && head[5] == '1' && head[6] == '.') {
		/* A response first: the observer started while a keep-alive
		 * connection was mid-exchange. Its next request decides. */
		st->verdict = V_RECHECK;
		st->role = a->dir == DIR_EGRESS ? ROLE_SERVER : ROLE_CLIENT;
		return false;
	}
	if (!track) {
		/* A connection that predates the observer may be seen first in
		 * the middle of a body: give it a few buffers to start a request
		 * before dismissing it. */
		if (st->verdict == V_UNKNOWN && (st->fresh || ++st->strikes >= STRIKES_MAX)) {
			bpf_map_delete_elem(&conns, k);
			skip_fd(k);
		}
		return false;
	}
	st->verdict = V_TRACK;
	st->role = role;
	st->id = __sync_fetch_and_add(&conn_seq, 1) + 1;
	st->bytes[0] = 0;
	st->bytes[1] = 0;
	count(COUNTER_CONNS_TRACKED, 1);
	emit_open(st, k->fd);
	return true;
}

struct emit_ctx {
	__u64 ts;
	__u64 conn_id;
	__u64 offset;
	__s32 fd;
	__u8 dir;
	__u8 role;
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
		fill_header(&r->ev, KIND_DATA, ec->ts, ec->conn_id, ec->fd, ec->role);
		r->ev.offset = ec->offset;
		r->ev.dir = ec->dir;
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

static __always_inline int io_enter(__u64 fd_arg, __u64 buf, __u64 iovcnt, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_key k = {.tgid = id >> 32, .fd = (__s32)fd_arg};
	if (k.tgid == self_tgid)
		return 0;
	struct conn_state *st = conn_lookup(&k);
	if (!st)
		return 0;
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
	if (bpf_map_update_elem(&active, &id, &a, BPF_ANY))
		count(COUNTER_ACTIVE_MAP_FULL, 1);
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
	struct io_args *saved = bpf_map_lookup_elem(&active, &id);
	if (!saved)
		return 0;
	struct io_args a = *saved;
	bpf_map_delete_elem(&active, &id);
	__s64 ret = ctx->ret;
	if (ret <= 0)
		return 0;
	struct conn_key k = {.tgid = id >> 32, .fd = a.fd};
	struct conn_state *st = bpf_map_lookup_elem(&conns, &k);
	if (!st)
		return 0;
	if (st->verdict != V_TRACK && !classify(&k, st, &a, ret))
		return 0;

	__u8 dir = a.dir & 1;
	struct emit_ctx ec = {
		.ts = dir == DIR_EGRESS ? a.ts_ns : bpf_ktime_get_ns(),
		.conn_id = st->id,
		.offset = __sync_fetch_and_add(&st->bytes[dir], ret),
		.fd = a.fd,
		.dir = dir,
		.role = st->role,
	};
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
	struct conn_state *st = bpf_map_lookup_elem(&conns, &k);
	if (!st) {
		bpf_map_delete_elem(&skip, &k);
		return 0;
	}
	if (st->verdict == V_TRACK) {
		__u32 zero = 0;
		struct record *r = bpf_map_lookup_elem(&scratch, &zero);
		if (r) {
			fill_header(&r->ev, KIND_CLOSE, bpf_ktime_get_ns(), st->id, k.fd, st->role);
			submit(r, sizeof(struct event));
		}
	}
	bpf_map_delete_elem(&conns, &k);
	return 0;
}
