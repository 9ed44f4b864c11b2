/* Pinned kernel types for CO-RE: generated from the BTF of Linux 6.18 with
 * `bpftool btf dump file /sys/kernel/btf/vmlinux format c`. CO-RE relocations
 * adapt field offsets to the running kernel at load time. */
#include "vmlinux_618.h"
