"""The programs' system-call filter: what no benchmark solution needs, denied by seccomp.

Standard library only (imported by the sandbox worker, run with ``python -I -S``). The filter is
compiled once per worker by libseccomp (``libseccomp.so.2``, through ctypes: its own API, no
hand-written BPF), exported as a BPF program, and installed in each program's process just
before its code runs (``prctl(PR_SET_SECCOMP)``, after ``no_new_privs``): one system call per
program, no recompilation. Where libseccomp is missing, :func:`compile_filter` says why and the
programs run without a filter (the namespaces still confine them).

Denied, with ``EPERM`` unless noted: System V and POSIX IPC objects; kernel keyrings; file locks
(``flock``, ``fcntl`` record, OFD locks and leases -- a lock on a file that every sandbox can open
is a channel between programs); ``ptrace`` and reading or writing other processes' memory;
``mount``, ``unshare``, ``setns``, ``pivot_root``, ``chroot`` and the new mount API; ``clone`` with
any namespace flag or ``CLONE_PARENT`` (a child re-parented outside the program); ``clone3``
(``ENOSYS``: its flags cannot be inspected, and the C library falls back to ``clone``); bpf,
perf events, io_uring (``ENOSYS``), userfaultfd, fanotify, file handles, extended attributes,
kernel modules, kexec, reboot, swap, accounting, quotas, the kernel log, clocks, host and domain
names, raw I/O ports. System calls of another architecture (x32, i386 on x86_64) kill the process.
"""

from __future__ import annotations

import ctypes
import errno
import os

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SCMP_FLTATR_CTL_OPTIMIZE = 8


def SCMP_ACT_ERRNO(err: int) -> int:  # noqa: N802 - libseccomp's macro name
    return 0x00050000 | (err & 0xFFFF)


DENIED = (
    # System V IPC and POSIX message queues
    "shmget shmat shmdt shmctl semget semop semtimedop semtimedop_time64 semctl msgget msgsnd "
    "msgrcv msgctl ipc mq_open mq_unlink mq_timedsend mq_timedsend_time64 mq_timedreceive "
    "mq_timedreceive_time64 mq_notify mq_getsetattr "
    # keyrings, locks, other processes
    "add_key request_key keyctl flock ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd "
    # namespaces and mounts
    "mount umount umount2 pivot_root chroot unshare setns move_mount open_tree fsopen fsmount "
    "fsconfig fspick mount_setattr "
    # kernel interfaces no solution needs
    "bpf perf_event_open userfaultfd fanotify_init fanotify_mark open_by_handle_at "
    "name_to_handle_at setxattr lsetxattr fsetxattr removexattr lremovexattr fremovexattr "
    "init_module finit_module delete_module kexec_load kexec_file_load reboot swapon swapoff acct "
    "quotactl quotactl_fd syslog lookup_dcookie nfsservctl iopl ioperm vhangup uselib ustat sysfs "
    "_sysctl settimeofday clock_settime clock_settime64 clock_adjtime clock_adjtime64 adjtimex "
    "sethostname setdomainname move_pages migrate_pages"
).split()
NOT_IMPLEMENTED = ("clone3", "io_uring_setup", "io_uring_enter", "io_uring_register")
#: fcntl commands denied: F_GETLK F_SETLK F_SETLKW, F_OFD_GETLK F_OFD_SETLK F_OFD_SETLKW,
#: F_SETLEASE F_GETLEASE
FCNTL_LOCKS = (5, 6, 7, 36, 37, 38, 1024, 1025)
#: clone flags denied: CLONE_PARENT, CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
#: CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET
CLONE_FLAGS = (0x00008000, 0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000,
               0x20000000, 0x40000000)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def compile_filter() -> tuple[bytes | None, str | None]:
    """(the BPF program, None), or (None, why there is no filter on this machine)."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        # ctypes.util imports subprocess, and with it threading, whose after-fork hook then
        # runs in every forked program (0.7 ms each here): only where the usual name fails.
        from ctypes.util import find_library

        try:
            lib = ctypes.CDLL(find_library("seccomp") or "libseccomp.so", use_errno=True)
        except OSError as e:
            return None, f"libseccomp is not installed ({e})"
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        return None, "seccomp_init failed"
    try:
        # A binary tree of system-call numbers (libseccomp 2.5+; older ones keep the linear list):
        # each program's install costs the kernel less (it checks every system call against the
        # filter once, to cache the always-allowed ones): 0.23 vs 0.40 ms here.
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)
        def rule(action: int, syscall: str, *cmps: tuple[int, int, int]) -> None:
            nr = lib.seccomp_syscall_resolve_name(syscall.encode())
            if nr == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp
                return
            arr = (_ArgCmp * max(1, len(cmps)))(*[_ArgCmp(a, SCMP_CMP_MASKED_EQ, m, v)
                                                  for a, m, v in cmps])
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
            if rc not in (0, -errno.EEXIST) and nr >= 0:  # negative: not on this architecture
                raise OSError(-rc, f"seccomp rule for {syscall}: {os.strerror(-rc)}")

        eperm, enosys = SCMP_ACT_ERRNO(errno.EPERM), SCMP_ACT_ERRNO(errno.ENOSYS)
        for syscall in DENIED:
            rule(eperm, syscall)
        for syscall in NOT_IMPLEMENTED:
            rule(enosys, syscall)
        for cmd in FCNTL_LOCKS:
            for syscall in ("fcntl", "fcntl64"):
                rule(eperm, syscall, (1, 0xFFFFFFFF, cmd))
        for flag in CLONE_FLAGS:
            rule(eperm, "clone", (0, flag, flag))
        r, w = os.pipe()
        try:
            rc = lib.seccomp_export_bpf(ctx, w)
            os.close(w)
            w = -1
            if rc != 0:
                return None, f"seccomp_export_bpf failed: {os.strerror(-rc)}"
            chunks = []
            while chunk := os.read(r, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        return b"".join(chunks), None
    except OSError as e:
        return None, str(e)
    finally:
        lib.seccomp_release(ctx)


class Installer:
    """A compiled filter held in memory, ready to install with one ``prctl`` (made before any
    fork, so that a program's process only makes the call)."""

    def __init__(self, bpf: bytes):
        if len(bpf) % 8 or not bpf:
            raise ValueError("a BPF program is a whole number of 8-byte instructions")
        self._buf = ctypes.create_string_buffer(bpf, len(bpf))
        self._prog = _SockFprog(len(bpf) // 8, ctypes.addressof(self._buf))
        self._ref = ctypes.byref(self._prog)
        self._prctl = ctypes.CDLL(None, use_errno=True).prctl

    def install(self) -> None:
        """Install the filter on the calling thread (no_new_privs must be set already)."""
        if self._prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self._ref, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"seccomp filter: {os.strerror(err)}")
