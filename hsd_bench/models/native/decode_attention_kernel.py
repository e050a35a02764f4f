"""The Triton kernel of :mod:`.decode_attention` (imported only where Triton can run it: a module of
its own so that the jitted helper is a module-level name, as Triton resolves callees, and so that
importing the native backend never imports Triton)."""

import triton
import triton.language as tl


@triton.jit
def scores_block(q, keys, vals, ok, m, den, acc, scale, dtype: tl.constexpr, DOT_F32: tl.constexpr):
    """One block of keys into the online softmax (m: running max, den: sum, acc: p·V); ``ok``: which
    query row sees which key, ``[BLOCK_R, BLOCK_N]`` or broadcast to it."""
    if DOT_F32:  # Triton's CPU interpreter multiplies bfloat16 dots wrongly; float32 is exact here
        sc = tl.dot(q.to(tl.float32), tl.trans(keys).to(tl.float32), input_precision="ieee")
    else:
        sc = tl.dot(q, tl.trans(keys))  # [BLOCK_R, BLOCK_N]
    sc = sc.to(dtype).to(tl.float32) * scale  # the math path's matmul output is in dtype
    sc = tl.where(ok, sc, float("-inf"))
    m_new = tl.maximum(m, tl.max(sc, axis=1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp(m - m_safe)
    p = tl.exp(sc - m_safe[:, None])
    if DOT_F32:
        pv = tl.dot(p.to(dtype).to(tl.float32), vals.to(tl.float32), input_precision="ieee")
    else:
        pv = tl.dot(p.to(dtype), vals)
    return m_new, den * alpha + tl.sum(p, axis=1), acc * alpha[:, None] + pv


@triton.jit
def visible(j, hi, first, ROWS: tl.constexpr, HAS_WINDOW: tl.constexpr):
    """Which query rows see which of the cache slots ``j``: those below ``hi`` from the row's first
    visible slot on (``first``: one for all rows -- one position, or no window -- or one per row)."""
    if ROWS == 1 or not HAS_WINDOW:  # the one-row kernel's mask as it always was, for every row
        return ((j < hi) & (j >= first))[None, :]
    else:
        return (j < hi)[None, :] & (j[None, :] >= first[:, None])


@triton.jit
def decode_attention_kernel(
    q_ptr, k_ptr, v_ptr, cos_ptr, sin_ptr, pos_ptr, kc_ptr, vc_ptr, o_ptr, part_ptr, stat_ptr, count_ptr,
    stride_ch, stride_cs, stride_qt, stride_kt, stride_vt, slots, kv_len, window, scale, chunk,
    G: tl.constexpr, GP: tl.constexpr, HD: tl.constexpr, ROWS: tl.constexpr, BLOCK_R: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, MERGE: tl.constexpr, MERGE_BLOCK: tl.constexpr,
    HAS_WINDOW: tl.constexpr, DOT_F32: tl.constexpr, PDL: tl.constexpr,
):
    if PDL:  # launched while the projection before it still runs (gemv.PROGRAMMATIC_LAUNCH): its
        # q, k and v are that kernel's results, so nothing is read before the wait
        tl.extra.cuda.gdc_launch_dependents()
        tl.extra.cuda.gdc_wait()
    dtype = o_ptr.dtype.element_ty
    h = tl.program_id(0)
    s = tl.program_id(1)
    splits = tl.num_programs(1)
    lo = s * chunk
    d = tl.arange(0, HD)
    # Query rows: row r is query head g = r // ROWS of this KV head's group at the step's position
    # t = r % ROWS (one row per head where ROWS == 1), as the math path groups them.
    r = tl.arange(0, BLOCK_R)
    g = r // ROWS
    t = r % ROWS
    out_width = tl.num_programs(0) * G * HD  # the output's row: every query head
    kc_head = kc_ptr + h * stride_ch
    vc_head = vc_ptr + h * stride_ch
    # Everything whose address does not depend on the position is requested first, the
    # chunk's first block of keys and values included, so the loads overlap the position's.
    pos = tl.load(pos_ptr).to(tl.int32)  # the step's first position; row t is at pos + t
    d_rot = (d + HD // 2) % HD  # rotate_half: [-x2, x1]
    sign = tl.where(d < HD // 2, -1.0, 1.0)
    if ROWS == 1:
        cos = tl.load(cos_ptr + d).to(tl.float32)
        sin = tl.load(sin_ptr + d).to(tl.float32)
        cos_q, sin_q = cos[None, :], sin[None, :]
    else:
        cos_q = tl.load(cos_ptr + t[:, None] * HD + d[None, :]).to(tl.float32)
        sin_q = tl.load(sin_ptr + t[:, None] * HD + d[None, :]).to(tl.float32)
    q_rows = t[:, None] * stride_qt + (h * G + g)[:, None] * HD
    q = tl.load(q_ptr + q_rows + d[None, :], mask=(g < G)[:, None], other=0.0).to(tl.float32)
    q_rot = tl.load(q_ptr + q_rows + d_rot[None, :], mask=(g < G)[:, None], other=0.0).to(tl.float32)
    j = lo + tl.arange(0, BLOCK_N)
    in_span = (j < kv_len)[:, None]
    keys = tl.load(kc_head + j[:, None] * stride_cs + d[None, :], mask=in_span, other=0.0)
    vals = tl.load(vc_head + j[:, None] * stride_cs + d[None, :], mask=in_span, other=0.0)
    if lo <= pos:  # chunks past the step's first position have nothing to score
        q_rope = (q * cos_q + sign[None, :] * q_rot * sin_q).to(dtype)
        if HAS_WINDOW:
            first = pos - window + 1  # the first row's first visible slot, the earliest of its rows'
        else:
            first = 0
        if HAS_WINDOW and ROWS > 1:
            firsts = pos + t - window + 1  # each row's own
        else:
            firsts = first
        hi = tl.minimum(lo + chunk, pos)  # slots < pos come from the cache
        m = tl.full((BLOCK_R,), float("-inf"), tl.float32)
        den = tl.zeros((BLOCK_R,), tl.float32)
        acc = tl.zeros((BLOCK_R, HD), tl.float32)
        ok = visible(j, hi, firsts, ROWS, HAS_WINDOW)
        m, den, acc = scores_block(q_rope, keys, vals, ok, m, den, acc, scale, dtype, DOT_F32)
        for n0 in range(lo + BLOCK_N, hi, BLOCK_N):  # chunks of more than one block
            jn = n0 + tl.arange(0, BLOCK_N)
            seen = (jn < hi) & (jn >= first)  # by any row
            keys = tl.load(kc_head + jn[:, None] * stride_cs + d[None, :], mask=seen[:, None], other=0.0)
            vals = tl.load(vc_head + jn[:, None] * stride_cs + d[None, :], mask=seen[:, None], other=0.0)
            ok = visible(jn, hi, firsts, ROWS, HAS_WINDOW)
            m, den, acc = scores_block(q_rope, keys, vals, ok, m, den, acc, scale, dtype, DOT_F32)
        if pos // chunk == s:  # this chunk holds the step's first position: the step's keys and values
            if ROWS == 1:  # one key: written, then scored from registers
                k = tl.load(k_ptr + h * HD + d).to(tl.float32)
                k_rot = tl.load(k_ptr + h * HD + d_rot).to(tl.float32)
                k = (k * cos + sign * k_rot * sin).to(dtype)
                v = tl.load(v_ptr + h * HD + d)
                tl.store(kc_head + pos * stride_cs + d, k)
                tl.store(vc_head + pos * stride_cs + d, v)
                sc = tl.sum(q_rope.to(tl.float32) * k.to(tl.float32)[None, :], axis=1)
                sc = sc.to(dtype).to(tl.float32) * scale
                m_new = tl.maximum(m, sc)
                alpha = tl.exp(m - m_new)
                p = tl.exp(sc - m_new)
                den = den * alpha + p
                acc = acc * alpha[:, None] + p.to(dtype).to(tl.float32)[:, None] * v.to(tl.float32)[None, :]
                m = m_new
            else:  # the step's ROWS keys: written (slots pos + t), then scored from registers, causally
                tk = tl.arange(0, BLOCK_T)
                tk_ok = (tk < ROWS)[:, None]
                cos_k = tl.load(cos_ptr + tk[:, None] * HD + d[None, :], mask=tk_ok, other=0.0).to(tl.float32)
                sin_k = tl.load(sin_ptr + tk[:, None] * HD + d[None, :], mask=tk_ok, other=0.0).to(tl.float32)
                k_at = k_ptr + tk[:, None] * stride_kt + h * HD
                k_new = tl.load(k_at + d[None, :], mask=tk_ok, other=0.0).to(tl.float32)
                k_rot = tl.load(k_at + d_rot[None, :], mask=tk_ok, other=0.0).to(tl.float32)
                k_new = (k_new * cos_k + sign[None, :] * k_rot * sin_k).to(dtype)
                v_new = tl.load(v_ptr + tk[:, None] * stride_vt + h * HD + d[None, :], mask=tk_ok, other=0.0)
                slot = (pos + tk)[:, None] * stride_cs + d[None, :]
                in_cache = tk_ok & ((pos + tk) < slots)[:, None]  # a padding row past the cache writes nothing
                tl.store(kc_head + slot, k_new, mask=in_cache)
                tl.store(vc_head + slot, v_new, mask=in_cache)
                causal = (tk[None, :] <= t[:, None]) & (tk[None, :] < ROWS)  # row t sees positions pos .. pos + t
                if HAS_WINDOW:
                    causal = causal & ((pos + tk)[None, :] >= firsts[:, None])
                m, den, acc = scores_block(q_rope, k_new, v_new, causal, m, den, acc, scale, dtype, DOT_F32)
        if MERGE:
            # this chunk's partial result: the first GP rows only (GP = the real rows, G * ROWS,
            # rounded up to a power of two)
            part = (h * splits + s) * GP
            rows_ok = (r < GP)[:, None]
            tl.store(part_ptr + (part + r)[:, None] * HD + d[None, :], acc, mask=rows_ok)
            tl.store(stat_ptr + (part + r) * 2, m, mask=r < GP)
            tl.store(stat_ptr + (part + r) * 2 + 1, den, mask=r < GP)
            tl.debug_barrier()  # every thread's partial stored before the count says so
            arrived = tl.atomic_add(count_ptr + h, 1, sem="acq_rel")
            busy = pos // chunk + 1
            if arrived == busy - 1:  # the last of this head's busy chunks: merge them
                gm = tl.arange(0, GP)
                m_all = tl.full((GP,), float("-inf"), tl.float32)
                den_all = tl.zeros((GP,), tl.float32)
                acc_all = tl.zeros((GP, HD), tl.float32)
                for t0 in range(0, busy, MERGE_BLOCK):
                    tc = t0 + tl.arange(0, MERGE_BLOCK)
                    rows = (h * splits + tc)[:, None] * GP + gm[None, :]  # [MERGE_BLOCK, GP]
                    t_ok = (tc < busy)[:, None]
                    m_t = tl.load(stat_ptr + rows * 2, mask=t_ok, other=float("-inf"), cache_modifier=".cg")
                    den_t = tl.load(stat_ptr + rows * 2 + 1, mask=t_ok, other=0.0, cache_modifier=".cg")
                    acc_t = tl.load(part_ptr + rows[:, :, None] * HD + d[None, None, :], mask=t_ok[:, :, None],
                                    other=0.0, cache_modifier=".cg")
                    m_next = tl.maximum(m_all, tl.max(m_t, axis=0))
                    # -inf while every chunk so far lay before a row's window (its slots come later)
                    m_safe = tl.where(m_next == float("-inf"), 0.0, m_next)
                    w_t = tl.exp(m_t - m_safe[None, :])
                    a_all = tl.exp(m_all - m_safe)
                    den_all = den_all * a_all + tl.sum(w_t * den_t, axis=0)
                    acc_all = acc_all * a_all[:, None] + tl.sum(w_t[:, :, None] * acc_t, axis=0)
                    m_all = m_next
                out = (acc_all / den_all[:, None]).to(dtype)
                gq = gm // ROWS
                o_rows = (gm % ROWS)[:, None] * out_width + (h * G + gq)[:, None] * HD
                tl.store(o_ptr + o_rows + d[None, :], out, mask=(gq < G)[:, None])
                tl.atomic_xchg(count_ptr + h, 0)  # ready for the next launch (graph replays)
        else:
            den = tl.where(den == 0.0, 1.0, den)  # padding rows of the group
            o_rows = t[:, None] * out_width + (h * G + g)[:, None] * HD
            tl.store(o_ptr + o_rows + d[None, :], (acc / den[:, None]).to(dtype), mask=(g < G)[:, None])
