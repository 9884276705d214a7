/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel types the observer reads, declared by hand instead of a full
 * vmlinux.h. Every struct carries preserve_access_index, so field offsets are
 * relocated against the running kernel's BTF at load time (CO-RE): only the
 * field names and types below must match the kernel, never the layout.
 */
#ifndef LLM_OBSERVER_KERNEL_H
#define LLM_OBSERVER_KERNEL_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

/* uapi/linux/bpf.h values used here. */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};
enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
};
enum {
	BPF_F_NO_PREALLOC = 1,
	BPF_F_NO_COMMON_LRU = 2,
};
enum {
	BPF_LOCAL_STORAGE_GET_F_CREATE = 1,
};

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define SOCK_STREAM 1
#define AF_INET 2
#define AF_INET6 10

struct inode {
	unsigned short i_mode;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
	void *private_data;
} __attribute__((preserve_access_index));

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
	struct files_struct *files;
} __attribute__((preserve_access_index));

struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct socket {
	short type;
	struct sock *sk;
} __attribute__((preserve_access_index));

/* User-space layouts read through bpf_probe_read_user (stable ABI). */
struct iovec {
	void *iov_base;
	__u64 iov_len;
};

struct user_msghdr {
	void *msg_name;
	int msg_namelen;
	struct iovec *msg_iov;
	__u64 msg_iovlen;
	void *msg_control;
	__u64 msg_controllen;
	unsigned int msg_flags;
};

/*
 * Syscall tracepoint records (tracefs events/syscalls/<name>/format): eight
 * bytes of common fields, the syscall number padded to eight, then the
 * arguments or the return value.
 */
struct syscall_enter_args {
	__u64 common;
	__s64 nr;
	__u64 args[6];
};

struct syscall_exit_args {
	__u64 common;
	__s64 nr;
	__s64 ret;
};

/*
 * x86-64 user registers as a uprobe sees them (arch/x86/include/asm/ptrace.h).
 * The layout is the kernel's ABI for this architecture, so it is declared
 * plainly rather than relocated.
 */
struct pt_regs {
	unsigned long r15;
	unsigned long r14;
	unsigned long r13;
	unsigned long r12;
	unsigned long bp;
	unsigned long bx;
	unsigned long r11;
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long ip;
	unsigned long cs;
	unsigned long flags;
	unsigned long sp;
	unsigned long ss;
};

/* The sched/sched_process_exec tracepoint record: common fields, then the
 * __data_loc of the file name, the new pid and the old one. */
struct sched_process_exec_args {
	__u64 common;
	__u32 filename_loc;
	__s32 pid;
	__s32 old_pid;
};

#endif
