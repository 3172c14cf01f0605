"""Conservation checks over the whole state: no page lost, none owned twice, counters that add
up. Vectorised numpy (O(pages)); used by the tests and by `vmemsim run --check`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vmemsim.guest.policies.base import NEXT, PREV, PolicyState, list_length
from vmemsim.kernels.freelists import bitmap_members, members
from vmemsim.kernels.layout import (
    C_BACKED,
    C_BALLOON_HEAD,
    C_BALLOON_N,
    C_GFREE_BUMP,
    C_GFREE_HEAD,
    C_GFREE_N,
    C_GSWAP_FREE_N,
    C_GSWAP_SLOTS,
    C_GSWAPPED,
    C_HINTS,
    C_HSWAP_FREE_N,
    C_HSWAP_SLOTS,
    C_SALT,
    C_SHARED,
    C_SWAPPED,
    C_USER_FRAMES,
    C_ZERO,
    C_ZIP_MPNS,
    C_ZIPPED,
    C_ZSLOT_BUMP,
    C_ZSLOT_FREE_N,
    C_ZSLOT_HEAD,
    FSLOT_NONE,
    G_BALLOON,
    G_DIRTY,
    G_FREE,
    G_KERNEL,
    G_KIND,
    G_USER,
    H_BACKED,
    H_BALLOON,
    H_MASK,
    H_SHARED,
    H_SWAPPED,
    H_ZIPPED,
    HC_MFREE_BUMP,
    HC_MFREE_HEAD,
    HC_MFREE_N,
    HC_SHARED_MPNS,
    HC_SHARED_REFS,
    NIL,
    P_COUNT,
    P_HEAD,
    P_TAIL,
    PTE_SWAP0,
    R_OVERHEAD,
    R_ZIPCACHE,
    RV_SHARED,
)

if TYPE_CHECKING:
    from vmemsim.engine import Simulation


class InvariantError(AssertionError):
    pass


def _distinct(a: np.ndarray, what: str) -> None:
    # Sorted neighbours, not np.unique: numpy 2's hash-based unique took 0.25 s a call on a
    # million pages, which made `vmemsim run --check` of the default scenario 5 s a tick.
    s = np.sort(a, axis=None)
    if (s[1:] == s[:-1]).any():
        raise InvariantError(f"{what}: an entry appears twice")


def _free_list(links: np.ndarray, meta: np.ndarray, ihead: int, ibump: int | None,
               count: int, what: str) -> np.ndarray:
    bump = links.size if ibump is None else int(meta[ibump])
    try:
        return members(links, int(meta[ihead]), bump, links.size, count)
    except ValueError as e:
        raise InvariantError(f"{what}: {e}") from None


def _check_policy_list(pol: PolicyState, user: np.ndarray, kind: np.ndarray,
                       what: str) -> None:
    """The guest policy's list holds exactly the user frames, each once, in one chain from the
    head to the tail whose PREV and NEXT links agree."""
    links = pol.links.reshape(-1, 2)
    prev, nxt = links[:, PREV], links[:, NEXT]
    other = kind != G_USER
    if (prev[other] != NIL).any() or (nxt[other] != NIL).any():
        raise InvariantError(f"{what}: a frame that holds no user page is linked")
    head, tail, count = (int(pol.meta[i]) for i in (P_HEAD, P_TAIL, P_COUNT))
    if count == 0:
        if head != NIL or tail != NIL:
            raise InvariantError(f"{what}: empty, yet it has a head or a tail")
        return
    if head < 0 or tail < 0 or kind[head] != G_USER or kind[tail] != G_USER \
            or prev[head] != NIL or nxt[tail] != NIL:
        raise InvariantError(f"{what}: head {head} or tail {tail} is not an end of the list")
    p, n = prev[user], nxt[user]
    if (p[p != NIL] >= kind.size).any() or (n[n != NIL] >= kind.size).any() \
            or (kind[p[p != NIL]] != G_USER).any() or (kind[n[n != NIL]] != G_USER).any():
        raise InvariantError(f"{what}: a link points to a frame that holds no user page")
    if (nxt[p[p != NIL]] != user[p != NIL]).any() or (prev[n[n != NIL]] != user[n != NIL]).any():
        raise InvariantError(f"{what}: PREV and NEXT links disagree")
    if list_length(pol.links, head, count) != count:  # rules out cycles beside the chain
        raise InvariantError(f"{what}: {count} frames counted, the chain from the head differs")


def check_all(sim: Simulation) -> None:
    h = sim.host
    n_mpn = h.rmap_vm.size
    nfree = int(h.hc[HC_MFREE_N])
    free = _free_list(h.rmap_gppn, h.hc, HC_MFREE_HEAD, HC_MFREE_BUMP, nfree, "host free list")
    if free.size != nfree:
        raise InvariantError(f"host free list holds {free.size} MPNs, counter says {nfree}")
    _distinct(free, "host free list")  # a listed MPN also in the never-used range, say
    if (h.rmap_vm[free] != -1).any():
        raise InvariantError("a free machine page has an owner")
    owned = np.flatnonzero(h.rmap_vm >= 0)
    shared = np.flatnonzero(h.rmap_vm == RV_SHARED)
    if owned.size + shared.size + nfree != n_mpn:
        raise InvariantError(f"machine pages: {owned.size} owned + {shared.size} shared + "
                             f"{nfree} free != {n_mpn}")
    _check_sharing(sim, shared)
    for v in sim.vms:
        a = v.arrays
        vid = a.vm_id
        st = a.pstate & H_MASK
        mine = owned[h.rmap_vm[owned] == vid]
        backing = mine[h.rmap_gppn[mine] >= 0]
        # Every backed GPPN maps to an MPN whose reverse map points back, and vice versa.
        g_backed = np.flatnonzero(st == H_BACKED)
        if g_backed.size != a.vc[C_BACKED]:
            raise InvariantError(f"{v.cfg.name}: backed count {a.vc[C_BACKED]} != "
                                 f"{g_backed.size} pages in state backed")
        if backing.size != g_backed.size:
            raise InvariantError(f"{v.cfg.name}: {backing.size} MPNs back pages, "
                                 f"{g_backed.size} GPPNs are backed")
        mp = a.pmap[g_backed]
        _distinct(mp, f"{v.cfg.name}: pmap")
        if (h.rmap_vm[mp] != vid).any() or (h.rmap_gppn[mp] != g_backed).any():
            raise InvariantError(f"{v.cfg.name}: pmap and reverse map disagree")
        zc = int((h.rmap_gppn[mine] == R_ZIPCACHE).sum())
        if zc != a.vc[C_ZIP_MPNS]:
            raise InvariantError(f"{v.cfg.name}: zip cache holds {zc} MPNs, counter says "
                                 f"{a.vc[C_ZIP_MPNS]}")
        if getattr(v, "gone", False) and mine.size:  # powered off or moved out: holds nothing
            raise InvariantError(f"{v.cfg.name}: powered off, yet owns {mine.size} MPNs")
        ov = int((h.rmap_gppn[mine] == R_OVERHEAD).sum())
        if v.powered_on and ov != v.overhead_pages and nfree > 0:
            raise InvariantError(f"{v.cfg.name}: overhead pages {ov} != {v.overhead_pages}")
        # Host swap file: slots of swapped pages plus free slots are all slots, once each.
        g_sw = np.flatnonzero(st == H_SWAPPED)
        if g_sw.size != a.vc[C_SWAPPED]:
            raise InvariantError(f"{v.cfg.name}: swapped count mismatch")
        n_hswap = int(a.vc[C_HSWAP_SLOTS])
        hfree = bitmap_members(a.hswap_bits)
        if hfree.size != a.vc[C_HSWAP_FREE_N]:
            raise InvariantError(f"{v.cfg.name}: host swap bitmap and free count disagree")
        slots = np.concatenate([a.pmap[g_sw], hfree])
        _distinct(slots, f"{v.cfg.name}: host swap slots")
        if slots.size != n_hswap or (slots >= n_hswap).any():
            raise InvariantError(f"{v.cfg.name}: host swap slots lost")
        g_z = np.flatnonzero(st == H_ZIPPED)
        if g_z.size != a.vc[C_ZIPPED]:
            raise InvariantError(f"{v.cfg.name}: zipped count mismatch")
        zfree = _free_list(a.zowner, a.vc, C_ZSLOT_HEAD, C_ZSLOT_BUMP,
                           int(a.vc[C_ZSLOT_FREE_N]), f"{v.cfg.name}: zip slot free list")
        zs = np.concatenate([a.pmap[g_z], zfree])
        _distinct(zs, f"{v.cfg.name}: zip slots")
        if zs.size != a.zowner.size or (a.zowner[a.pmap[g_z]] != g_z).any():
            raise InvariantError(f"{v.cfg.name}: zip slots lost or misowned")
        if int(a.content[2]) * a.vc[C_ZIP_MPNS] < g_z.size:
            raise InvariantError(f"{v.cfg.name}: compressed pages exceed the cache's pages")
        # Guest side: frames are free, kernel, user or balloon; user frames map back.
        kind = a.pstate & G_KIND
        gfree = _free_list(a.frame_vpn, a.vc, C_GFREE_HEAD, C_GFREE_BUMP, int(a.vc[C_GFREE_N]),
                           f"{v.cfg.name}: guest free list")
        _distinct(gfree, f"{v.cfg.name}: guest free list")
        if gfree.size != a.vc[C_GFREE_N]:
            raise InvariantError(f"{v.cfg.name}: guest free list length != its counter")
        if (kind[gfree] != G_FREE).any() or (kind == G_FREE).sum() != gfree.size:
            raise InvariantError(f"{v.cfg.name}: guest free list and frame kinds disagree")
        balloon = _free_list(a.frame_vpn, a.vc, C_BALLOON_HEAD, None, int(a.vc[C_BALLOON_N]),
                             f"{v.cfg.name}: balloon list")
        _distinct(balloon, f"{v.cfg.name}: balloon")
        if balloon.size != a.vc[C_BALLOON_N]:
            raise InvariantError(f"{v.cfg.name}: balloon list length != balloon size")
        if (kind[balloon] != G_BALLOON).any() or (kind == G_BALLOON).sum() != balloon.size:
            raise InvariantError(f"{v.cfg.name}: balloon list and frame kinds disagree")
        if (st[balloon] != H_BALLOON).any():
            raise InvariantError(f"{v.cfg.name}: a balloon page still holds content")
        user = np.flatnonzero(kind == G_USER)
        if user.size != a.vc[C_USER_FRAMES] or user.size != a.pol.meta[P_COUNT]:
            raise InvariantError(f"{v.cfg.name}: user frames {user.size}, counter "
                                 f"{a.vc[C_USER_FRAMES]}, policy list {a.pol.meta[P_COUNT]}")
        _check_policy_list(a.pol, user, kind, f"{v.cfg.name}: policy list")
        gv = a.frame_vpn[user]
        if (gv < 0).any() or (a.pt[gv] != user).any():
            raise InvariantError(f"{v.cfg.name}: frame table and page tables disagree")
        # An anonymous user page is clean exactly when guest swap still holds its copy (the
        # swap cache); a file-backed one may be either.
        dirty = (a.pstate[user] & G_DIRTY) != 0
        fs = a.fslot[user]
        if (dirty & (fs >= 0)).any() or (~dirty & (fs == FSLOT_NONE)).any():
            raise InvariantError(f"{v.cfg.name}: a dirty bit disagrees with the swap cache")
        mapped = np.flatnonzero(a.pt >= 0)
        if mapped.size != user.size:
            raise InvariantError(f"{v.cfg.name}: a page table maps a frame twice or a freed one")
        if v.powered_on and (kind == G_KERNEL).sum() != v.kernel_pages:
            raise InvariantError(f"{v.cfg.name}: guest kernel frames changed")
        # Guest swap: slots of swapped-out pages, swap-cache slots and free slots, once each.
        swp = a.pt[a.pt <= PTE_SWAP0]
        if swp.size != a.vc[C_GSWAPPED]:
            raise InvariantError(f"{v.cfg.name}: guest swapped count mismatch")
        n_gswap = int(a.vc[C_GSWAP_SLOTS])
        sfree = bitmap_members(a.gswap_bits)
        if sfree.size != a.vc[C_GSWAP_FREE_N]:
            raise InvariantError(f"{v.cfg.name}: guest swap bitmap and free count disagree")
        gs = np.concatenate([PTE_SWAP0 - swp, a.fslot[a.fslot >= 0], sfree])
        _distinct(gs, f"{v.cfg.name}: guest swap slots")
        if gs.size != n_gswap or (gs >= n_gswap).any():
            raise InvariantError(f"{v.cfg.name}: guest swap slots lost ({gs.size} of "
                                 f"{n_gswap})")


def _check_sharing(sim: Simulation, shared: np.ndarray) -> None:
    """TPS: every shared machine page's reference count equals the pmap entries, in all VMs,
    that name it; the host's and VMs' counters agree; each shared page is in the hash table
    once, under the key of its content and salt; hints are counted."""
    from vmemsim.kernels.sharing import CID_UNIQUE_HINT, HINT, content_key

    h = sim.host
    names = [np.zeros(0, dtype=np.int64)]
    for v in sim.vms:
        a = v.arrays
        st = a.pstate & H_MASK
        gs = np.flatnonzero(st == H_SHARED)
        if gs.size != a.vc[C_SHARED]:
            raise InvariantError(f"{v.cfg.name}: shared count {a.vc[C_SHARED]} != {gs.size} "
                                 f"pages in state shared")
        cid = a.cid[gs]
        if (cid < 0).any() or (cid & HINT).any():
            raise InvariantError(f"{v.cfg.name}: a shared page is unique or a hint")
        if int((cid == 0).sum()) != a.vc[C_ZERO]:
            raise InvariantError(f"{v.cfg.name}: zero count {a.vc[C_ZERO]} != "
                                 f"{int((cid == 0).sum())} shared zero pages")
        mp = a.pmap[gs].astype(np.int64)
        if (h.rmap_vm[mp] != RV_SHARED).any():
            raise InvariantError(f"{v.cfg.name}: a shared GPPN maps a page that is not shared")
        salt = int(a.vc[C_SALT])
        for m, c in zip(mp.tolist(), cid.tolist(), strict=True):
            i = _table_slot(h, int(content_key(c, salt)))
            if i < 0 or h.sval[i] != m:
                raise InvariantError(f"{v.cfg.name}: shared MPN {m} not in the table under "
                                     f"its content's key")
        names.append(mp)
        allc = a.cid
        hints = int((allc == CID_UNIQUE_HINT).sum() + ((allc >= 0) & ((allc & HINT) != 0)).sum())
        if hints != a.vc[C_HINTS]:
            raise InvariantError(f"{v.cfg.name}: hints {a.vc[C_HINTS]} != {hints} hinted pages")
    refs = np.bincount(np.concatenate(names), minlength=h.rmap_vm.size)
    if (refs[shared] != h.rmap_gppn[shared]).any():
        raise InvariantError("a shared machine page's reference count != the pmap entries "
                             "that name it")
    if int(refs.sum()) != refs[shared].sum():
        raise InvariantError("a pmap entry in state shared names a page that is not shared")
    if shared.size != h.hc[HC_SHARED_MPNS] or refs.sum() != h.hc[HC_SHARED_REFS]:
        raise InvariantError(f"host sharing counters {h.hc[HC_SHARED_MPNS]} common, "
                             f"{h.hc[HC_SHARED_REFS]} shared != {shared.size}, {refs.sum()}")
    vals = h.sval[h.skey != -1]
    if int((vals >= 0).sum()) != shared.size:
        raise InvariantError("the hash table and the shared pages disagree")


def _table_slot(h: object, key: int) -> int:
    skey = h.skey  # type: ignore[attr-defined]
    mask = skey.size - 1
    i = key & mask
    while True:
        if skey[i] == key:
            return i
        if skey[i] == -1:
            return -1
        i = (i + 1) & mask
