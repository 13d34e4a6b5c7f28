"""The integer layer table shared by the Plan (which writes it) and the kernels (which read it).

Row 0 is a header; every further row is one unit: a recurrent direction, a Dense, an
Activation or a merge of two directions. Offsets point into the flat weight buffer (W_*),
the flat state vector (S_*) or, for buffers, name one of: 0 = the caller's input X,
1 and 2 = the two work sequences.
"""

NCOLS = 36

# header (row 0)
HDR_NROWS = 0   # number of unit rows after the header
HDR_IN = 1      # network input width I
HDR_OUT = 2     # network output width O
HDR_WMAX = 3    # widest intermediate sequence row
HDR_GMAX = 4    # widest gate/projection row (padded)
HDR_VMAX = 5    # widest scratch vector (padded)
HDR_FINAL = 6   # buffer holding the network output
HDR_STATE = 7   # state vector length

# unit kinds
K_LSTM = 0
K_GRU = 1
K_RNN = 2
K_DENSE = 3
K_ACT = 4
K_MERGE = 5

# unit columns
C_KIND = 0
C_SRC = 1       # source buffer id
C_DST = 2       # destination buffer id
C_K = 3         # input width (source row stride)
C_DW = 4        # destination row stride
C_COL = 5       # first destination column written by this unit
C_H = 6         # hidden size (Dense/Act/Merge: output width)
C_HP = 7        # gate stride (H padded)
C_P = 8         # unit output width (LSTM projection size, else H)
C_G = 9         # padded width of the input projection row
C_REV = 10      # 1: process frames last to first
C_WX = 11       # W_: input weights, transposed (K, G)
C_WR = 12       # W_: recurrent weights, transposed (P, G) (GRU: z,r part (H, 2Hp))
C_WR2 = 13      # W_: GRU h-gate recurrent weights (H, Hp) / LSTM projection (H, Pp)
C_B = 14        # W_: bias (G)
C_B2 = 15       # W_: GRU recurrent h bias for linear_before_reset (Hp)
C_PEEP = 16     # W_: peepholes (3H) i, o, f
C_SH = 17       # S_: hidden state h (P)
C_SC = 18       # S_: cell state c (H)
C_ACT = 19      # activation codes: 3 columns (f, g, h)
C_PAR = 22      # W_: 7 floats: f alpha, f beta, g alpha, g beta, h alpha, h beta, clip
C_FLAGS = 23    # 5 columns: clip, input_forget / linear_before_reset, peephole, projection, fused
C_PP = 28       # LSTM projection padded width
C_MERGE = 29    # merge mode: 0 concat (no merge row), 1 sum, 2 mul, 3 ave
C_FMT = 30      # storage of the C_WX / C_WR matrices: FMT_FLOAT, FMT_BF16 or FMT_INT8
C_SX = 31       # W_: per-row scales of the C_WX matrix (int8 only)
C_SR = 32       # W_: per-row scales of the C_WR matrix (int8 only)

FMT_FLOAT = 0   # the model's dtype
FMT_BF16 = 1    # bfloat16 bit patterns, two per float32 slot
FMT_INT8 = 2    # int8 codes, four per float32 slot, times one float scale per stored row
WEIGHT_FORMATS = {"float": FMT_FLOAT, "bf16": FMT_BF16, "int8": FMT_INT8}

MERGE_CODES = {"concat": 0, "sum": 1, "mul": 2, "ave": 3}
