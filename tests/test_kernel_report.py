"""effkernels.tools.kernel_report's SASS reading: loops, instruction classes, occupancy (pure functions on text;
the compiles themselves run in tests/test_triton_aot.py)."""
from effkernels.tools import kernel_report as kr

# A cuobjdump -sass excerpt: a loop from 0x0040 to 0x0090 (predicated backward branch), then EXIT and the
# `BRA self` trap after it, with padding NOPs.
SASS = """
        /*0000*/                   LDC R1, c[0x0][0x28] ;                  /* 0x00000a00ff017b82 */
        /*0010*/                   S2R R0, SR_TID.X ;                       /* 0x0000000000007919 */
        /*0020*/                   IMAD.WIDE R2, R0, 0x4, R2 ;              /* 0x0000000400027825 */
        /*0030*/                   BRA 0x0040 ;                             /* 0x0000000000007947 */
        /*0040*/                   LDG.E.128 R4, desc[UR4][R2.64] ;         /* 0x0000000402047981 */
        /*0050*/                   F2FP.BF16.F32.PACK_AB R8, R5, R4 ;       /* 0x0000000405087231 */
        /*0060*/                   FFMA R9, R4, R5, R9 ;                    /* 0x0000000504097223 */
        /*0070*/                   MUFU.EX2 R10, R9 ;                       /* 0x00000009000a7308 */
        /*0080*/                   IADD3 R2, P0, R2, 0x10, RZ ;             /* 0x0000001002027810 */
        /*0090*/               @P0 BRA 0x0040 ;                             /* 0xfffffffc00000947 */
        /*00a0*/                   STG.E.128 desc[UR4][R2.64], R4 ;         /* 0x0000000402007986 */
        /*00b0*/                   EXIT ;                                   /* 0x000000000000794d */
        /*00c0*/                   BRA 0x00c0;                              /* 0xfffffffc00fc7947 */
        /*00d0*/                   NOP;                                     /* 0x0000000000007918 */
"""


def test_loops_skip_forward_branches_and_the_trap():
    insns = kr.instructions(SASS)
    assert len(insns) == 13  # the NOP is padding
    assert kr.loops(insns) == [(0x40, 0x90)]


def test_hot_loop_stats():
    stats = kr.hot_loop_stats(SASS)
    assert stats["loop_insts"] == 6 and stats["total_insts"] == 13
    cls = stats["loop_classes"]
    assert cls["LDG.E.128"] == 1 and cls["MUFU"] == 1 and cls["convert"] == 1 and cls["fp"] == 1
    assert cls["int/addr"] == 1 and cls["total"] == 6
    assert kr.hot_loop_stats(SASS.replace("@P0 BRA 0x0040", "@P0 BRA 0x00a0")) is None


def test_occupancy_limits():
    # 128 registers x 32 lanes = 4096 per warp: 16 warps per SM, 4 blocks of 4 warps: 25%.
    assert kr.occupancy(128, 0, 4) == dict(blocks_per_sm=4, occupancy=0.25, limited_by="registers")
    # 40 registers round up to 1280 per warp: 51 warps -> 12 blocks of 4 warps, but 2048 threads allow 16.
    assert kr.occupancy(40, 0, 4)["blocks_per_sm"] == 12
    # 32 registers: threads bind (16 blocks of 128), 100%.
    assert kr.occupancy(32, 0, 4) == dict(blocks_per_sm=16, occupancy=1.0, limited_by="threads")
    # 100 KB of shared memory (+1 KB reserved): 2 blocks on sm_90, 1 on sm_80 (164 KB).
    assert kr.occupancy(32, 100 * 1024, 4)["blocks_per_sm"] == 2
    assert kr.occupancy(32, 100 * 1024, 4, arch=80) == dict(blocks_per_sm=1, occupancy=1 / 16, limited_by="shared")
