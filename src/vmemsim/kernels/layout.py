"""Codes and indices shared by the kernels and the Python side that reads their counters.

Page state per GPPN (`pstate`, uint8), the one byte every reference reads after the page table:
the low three bits say where the hypervisor keeps the page's content (H_*), the next three are
the guest OS's view of the frame (G_*: its kind and dirty bit), and the two high bits mark
sampling (mapping invalidated) and ground-truth touching in this period. The guest's bits and
the hypervisor's share a byte only so that a hit costs one memory access: no kernel of one side
changes the other side's bits.
"""

# pstate & H_MASK: where a guest-physical page's content lives, from the hypervisor's view
H_UNBACKED = 0  # never touched: no machine page (demand allocation on first touch)
H_BACKED = 1  # mapped: pmap[gppn] is its MPN
H_SWAPPED = 2  # in the VM's host swap file: pmap[gppn] is the slot
H_ZIPPED = 3  # in the VM's compression cache: pmap[gppn] is the cache slot
H_BALLOON = 4  # pinned by the balloon driver; its machine page was freed
H_SHARED = 5  # mapped copy-on-write to a shared machine page (TPS): pmap[gppn] is its MPN
H_MASK = 0x07
H_TOUCHED = 0x40  # touched in the current sampling period (ground truth, not visible to ESX)
H_SAMPLED = 0x80  # chosen by active-memory sampling: mapping invalidated until next touch
H_FAST = H_BACKED | H_TOUCHED  # the only state a reference hits without a hypervisor fault

# pstate & G_BITS: the guest OS's view of a frame (GPPN)
G_FREE = 0x00
G_KERNEL = 0x08
G_USER = 0x10
G_BALLOON = 0x18
G_KIND = 0x18
G_DIRTY = 0x20
G_BITS = G_KIND | G_DIRTY
H_BITS = 0xFF & ~G_BITS  # the hypervisor's bits: pstate & H_BITS == H_FAST is a hit

# the guest's parameters (VMArrays.wm, int64): free-page watermarks, and swap-out clustering
WM_MIN = 0
WM_LOW = 1
WM_HIGH = 2
WM_CLUSTER = 3  # dirty pages written to guest swap per I/O (Linux: SWAP_CLUSTER_MAX, 32)
N_WM = 4

# guest page-table entry: >= 0 is a GPPN, PTE_NONE never touched, <= PTE_SWAP0 in guest swap
PTE_NONE = -1
PTE_SWAP0 = -2  # slot s is stored as PTE_SWAP0 - s

# fslot (per GPPN): >= 0 a guest swap slot holding a clean copy, FSLOT_NONE no copy (dirty,
# anonymous), FSLOT_FILE a file-backed page: its copy is the file (clean unless G_DIRTY)
FSLOT_NONE = -1
FSLOT_FILE = -2

# rmap (MPN -> owner): GPPN >= 0 when backing a VM page, else one of these. A free MPN has
# rmap_vm -1, and its rmap_gppn is its free-list link (kernels.freelists).
R_FREE = -1
R_ZIPCACHE = -2
R_OVERHEAD = -3
# A shared machine page (TPS, kernels.sharing) has rmap_vm RV_SHARED and its rmap_gppn is its
# reference count: the number of pmap entries, in any VM, that name it.
RV_SHARED = -2

# per-VM int64 counters (vc); cumulative, the recorder takes differences per second
C_REFS = 0
C_GFAULT = 1
C_HV_FIRST = 2
C_HV_SAMPLE = 3
C_SWIN = 4
C_SWOUT = 5
C_ZIP = 6
C_UNZIP = 7
C_GSWIN = 8
C_GSWOUT = 9
C_DOUBLE = 10
C_OOM = 11
C_SAMPLE_TOUCHED = 12
C_TOUCHED = 13  # distinct GPPNs touched this sampling period
C_BACKED = 14  # GPPNs backed now (GRANT)
C_SWAPPED = 15  # GPPNs in host swap now (SWCUR)
C_ZIPPED = 16  # GPPNs compressed now
C_ZIP_MPNS = 17  # machine pages held by the compression cache
C_GFREE_N = 18  # guest free-list length
C_GSWAP_FREE_N = 19  # free guest swap slots
C_GSWAPPED = 20  # guest virtual pages whose only copy is in guest swap
C_BALLOON_N = 21  # balloon size in pages
C_HSWAP_FREE_N = 22
C_ZSLOT_FREE_N = 23
C_ZQ_HEAD = 24  # the compression cache's oldest slot (its FIFO, linked through zlinks), -1
C_ZQ_TAIL = 25  # ... and its newest
C_BOOT_CURSOR = 26  # next GPPN to zero at boot
C_BALLOON_FAIL = 27
C_SWOUT_IOS = 28  # host swap-out write I/Os (clusters)
C_GEVICT = 29  # guest evictions (with or without a write)
C_BALLOON_EVICT = 30  # guest evictions caused by balloon inflation
C_USER_FRAMES = 31
# heads and cursors of the VM's free lists and bitmaps (kernels.freelists)
C_GFREE_HEAD = 32  # guest free frames, linked through frame_vpn
C_GFREE_BUMP = 33  # next never-used frame
C_BALLOON_HEAD = 34  # balloon frames, linked through frame_vpn
C_ZSLOT_HEAD = 35  # free compression-cache slots, linked through zowner
C_ZSLOT_BUMP = 36
C_GSWAP_CURSOR = 37  # word of gswap_bits where the next search starts
C_HSWAP_CURSOR = 38  # word of hswap_bits where the next search starts
C_GSWAP_SLOTS = 39  # size of the guest swap device, in pages (constant)
C_HSWAP_SLOTS = 40  # size of the VM's .vswp file, in pages (constant)
C_GSWOUT_IOS = 41  # guest swap-out write I/Os (clusters)
C_FILE_IN = 42  # file-backed pages read from the guest's disk (first touch, or after a drop)
C_FILE_OUT = 43  # dirty file-backed pages written back on eviction
# transparent page sharing (kernels.sharing)
C_SHARED = 44  # GPPNs mapped to shared machine pages now (SHRD)
C_ZERO = 45  # ... of them holding zeroes (ZERO)
C_COW = 46  # copy-on-write faults: writes that broke sharing (cumulative)
C_HINTS = 47  # pages hashed, unchanged since and not shared (COWH)
C_SCAN_CURSOR = 48  # the scanner's position in its pass over the VM (a permutation)
C_SCAN_STRIDE = 49  # ... its stride, coprime with the VM's pages
C_SALT = 50  # the VM's salt: pages share only with pages of the same salt
C_OS_SEED = 51  # its guest OS image: the same in VMs with the same guest.os
C_LP_BROKEN = 52  # 2 MB large pages broken into small ones (cumulative)
C_SCANNED = 53  # pages the scanner hashed (cumulative)
C_SHARE_OPS = 54  # pages newly shared (cumulative): the VM is no longer its own baseline
C_TLB_MISS = 55  # TLB misses of user references: page walks (kernels.mmu)
C_MMU_TRAPS = 56  # shadow paging's traps: page-table updates, context switches, hidden faults
C_PT_EVENTS = 57  # the guest's page-table updates and context switches (any MMU but off)
N_COUNTERS = 58

# per-VM float64 times (vt). The first five are vCPU-seconds, cumulative: where the VM's vCPU
# time went (kernels.refpath accounts each thread's slices; idle is the rest of vcpus x time).
T_RUN = 0  # running the workload's references
T_FAULT = 1  # guest and hypervisor work outside the references: faults, boot, balloon
T_IOWAIT = 2  # waiting on a device (guest swap-in, host swap-in)
T_BLOCKED = 3  # waiting for machine memory (blocked by the host, or none free)
T_GDEV_BUSY = 4  # guest swap device busy until (absolute simulated time)
T_IOW_WALL = 5  # device waits in wall seconds, raw (refpath turns them into T_IOWAIT)
T_WALK = 6  # vCPU-seconds of page walks after TLB misses: a part of T_RUN (kernels.mmu)
T_MMU = 7  # vCPU-seconds of shadow paging's traps: a part of T_FAULT
N_TIMES = 8

# host int64 scalars (hc)
HC_MFREE_N = 0
HC_MFREE_HEAD = 1  # free machine pages, linked through rmap_gppn (kernels.freelists)
HC_MFREE_BUMP = 2  # next never-used MPN
HC_SCARCE = 3  # free pages below which the order of allocations matters (kernels.refpath)
HC_SHARED_MPNS = 4  # shared machine pages (PSHARE common)
HC_SHARED_REFS = 5  # pmap entries naming them (PSHARE shared)
HC_TABLE_N = 6  # entries in TPS's hash table (hypervisor.sharing grows it to stay half empty)
N_HOST_COUNTERS = 7

# host float64 (ht)
HT_DEV_BUSY = 0  # host swap device busy until
N_HOST_TIMES = 2

# costs (float64 array `cost`), seconds
K_GUEST_FAULT = 0
K_HV_FIRST = 1
K_HV_SAMPLE = 2
K_DECOMPRESS = 3
K_BALLOON_PAGE = 4
K_GDEV_LAT = 5
K_GDEV_SVC = 6  # 1 / iops
K_HDEV_LAT = 7
K_HDEV_SVC = 8
K_COMPRESS = 9  # host CPU to compress one page (the swapper's time, not the VM's)
K_COW = 10  # a copy-on-write fault: a new machine page and a copy of the shared one
K_WALK = 11  # a page walk after a TLB miss, per kind: K_WALK + (guest large | host large << 1)
K_HIDDEN = 15  # shadow paging: a hidden fault (shadow entry not filled, or invalidated)
K_PT_TRAP = 16  # shadow paging: a trapped guest page-table update
K_CTX_TRAP = 17  # shadow paging: a trapped context switch (CR3 write)
N_COSTS = 18

# policy meta (pmeta int64)
P_HEAD = 0
P_TAIL = 1
P_COUNT = 2
P_HAND = 3
P_INSERT_REF = 4
P_POLICY = 5  # guest.policies.dispatch.REGISTRY id
N_PMETA = 8
NIL = -1

# thread parameters (pp float64 rows) and state (ps int64 rows): one row per thread, a
# process with cpu = c running ceil(c) threads (kernels.timeline)
PP_BASE = 0  # first global GVPN of the process
PP_SIZE = 1
PP_WSS = 2
PP_OFFSET = 3
PP_DIST = 4  # 0 uniform, 1 zipf, 2 hotcold, 3 scan
PP_ALPHA = 5
PP_HOT_FRAC = 6
PP_HOT_PROB = 7
PP_WRITE = 8
PP_COST = 9  # wall seconds per reference: CPU seconds / PP_SPEED
PP_CLOCK = 10  # absolute simulated time of the thread's next action
PP_STRIDE = 11  # permutation stride for spreading ranks over pages
PP_TOFF = 12  # trace replay: where the process's window starts in the VM's trace buffer
PP_AHEAD = 13  # references to load ahead of use, 0 for none (refpath.lookahead); never changes them
PP_SPEED = 14  # the share of a vCPU the thread runs at (cpu / threads, scaled to the VM's vCPUs)
PP_CARRY_RUN = 15  # time past the last tick's end the thread spent on a reference ...
PP_CARRY_IO = 16  # ... waiting on a device ...
PP_CARRY_CPU = 17  # ... and on a fault's work: accounted in the next tick
PP_KREF = 18  # share of the thread's references that go to the guest kernel's active frames
PP_KPAGES = 19  # the kernel's active frames: GPPNs [0, PP_KPAGES) (guestmm.kernel_frames)
PP_FILE = 20  # share of the process's pages that are file-backed (page cache)
PP_SHARE = 21  # share of its pages whose content its application has in other VMs (TPS)
PP_APP = 22  # its application's content seed (< 2**52: exact in a float64)
PP_MMU = 23  # MMU model (kernels.mmu): MMU_OFF, MMU_NESTED, MMU_SHADOW
PP_LARGE = 24  # share of the guest's virtual memory mapped with 2 MB pages
PP_HV_LARGE = 25  # 1: the hypervisor backs guest memory with 2 MB pages
PP_PT_RATE = 26  # guest page-table updates per reference
PP_CTX_RATE = 27  # guest context switches per reference
PP_PT_CARRY = 28  # fractions of an update ...
PP_CTX_CARRY = 29  # ... and of a context switch, carried to the next slice
PP_ROW0 = 30  # its VM's threads are rows [PP_ROW0, PP_ROW1): a TLB shoot-down reaches them all
PP_ROW1 = 31
N_PP = 32
PS_CURSOR = 0  # scan position
PS_PENDING = 1  # GVPN of a reference that blocked, -2 - GPPN for a kernel reference, or -1
PS_PENDING_W = 2
PS_REFS = 3
PS_TPOS = 4  # trace replay: next entry in the window
PS_TLEN = 5  # trace replay: entries loaded in the window
PS_VM = 6  # the VM (index) the thread belongs to
PS_ACTIVE = 7  # 1: runs in this tick
PS_SHARED = 8  # 1: another thread of its VM runs in this tick (they share the guest's device)
AHEAD = 32  # the most references the reference path draws ahead of use (a power of two)
AHEAD_NEAR = 16  # ... how many for working sets above AHEAD_MIN_WSS pages (1 MiB of page table)
AHEAD_MIN_WSS = 1 << 18
AHEAD_FAR_WSS = 1 << 22  # ... and AHEAD above this (16 MiB of page table: mostly in DRAM)
PS_RING = 9  # refpath's look-ahead: the next references, (GVPN << 1) | write (scratch)
PS_CRING = PS_RING + AHEAD  # ... and the scan cursor before each was drawn (scratch)
N_PS = PS_CRING + AHEAD
# a process's random stream (wrng uint64 rows): its state as of its next reference, and the
# look-ahead generator's state before each reference in the ring (scratch)
W_STATE = 0
W_SNAP = 4
N_WRNG = W_SNAP + 4 * AHEAD

DIST_CODES = {"uniform": 0, "zipf": 1, "hotcold": 2, "scan": 3, "trace": 4}

# kernel return status
ST_OK = 0
ST_BLOCKED = 1
ST_DONE = 2  # a thread reached the end of the tick (or has nothing left to do in it)
ST_YIELD = 3  # a thread stopped ahead of another agent: it runs again when it is the earliest
