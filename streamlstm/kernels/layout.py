"""The integer layer table shared by the Plan (which writes it) and the kernels (which read it).

Row 0 is a header; every further row is one unit of work: a recurrent direction, a Dense, an
Activation or a merge of two directions. Its ``C_KIND`` is a specialised row kind: the Plan
decides once (the fused default LSTM, GRU ``linear_before_reset``) and the kernels never test
that decision again. Offsets point into the flat weight buffer (``W_``), the flat state of one
stream (``S_``) or, for sequences, name one of: 0 = the caller's input X, 1 .. ``HDR_NSEQ`` = the work sequences
(the Plan allocates them so that every value lives until its last reader). Integer data of
rows (index maps) follows the unit rows in the table: offsets into it count from the first
element after row ``HDR_NROWS``.

The fields every row has and the fields of recurrent rows are named here; the fields only one
kind reads are named in that kind's kernel module (from ``FIRST_KIND_FIELD`` on). They live in
``kernels/`` because a cached kernel is compiled against these positions, and only changes to
``kernels/*.py`` invalidate the cache (``kernels/__init__.py``).
"""

NCOLS = 36

# header (row 0)
HDR_NROWS = 0   # number of unit rows after the header
HDR_IN = 1      # network input width I
HDR_OUT = 2     # network output width O
HDR_WMAX = 3    # widest intermediate sequence row
HDR_GMAX = 4    # widest gate/projection row (padded)
HDR_VMAX = 5    # widest scratch vector (padded)
HDR_FINAL = 6   # sequence holding the network output
HDR_STATE = 7   # length of one stream's state
HDR_NSEQ = 8    # number of work sequences (ids 1 .. NSEQ; 0 is the caller's input)
HDR_CMAX = 9    # widest per-frame gather scratch (im2col windows of the convolutions)
HDR_VOCAB = 10  # > 0: the input is one token id per frame, below this vocabulary size

# Row kinds (``C_KIND``) are declared by their modules in ``kinds/`` (``K_<NAME> = <id>``,
# one ``RowKind`` each); ``rows.py`` refuses two kinds with one id.

# A stored matrix (see ``stored.py``) takes five consecutive fields from its first column.
M_OFF = 0       # W_: first element of the panel-major matrix
M_ROWS = 1      # K: rows (the input width of the product)
M_COLS = 2      # G: columns (padded)
M_FMT = 3       # storage: FMT_FLOAT, FMT_BF16, FMT_INT8, FMT_BF16_DOT or FMT_INT8_DOT
M_SCALES = 4    # W_: one scale per row (int8 only, else 0)
MATRIX_FIELDS = 5

# fields of every row
C_KIND = 0
C_SRC = 1       # source sequence id
C_DST = 2       # destination sequence id
C_K = 3         # input width (source row stride)
C_DW = 4        # destination row stride
C_COL = 5       # first destination column written by this row
C_OUT = 6       # number of destination columns written by this row
C_ACT_F = 7     # activation codes: f (Dense, Activation: the only one), g, h
C_ACT_G = 8
C_ACT_H = 9
C_PARAMS = 10   # W_: float parameters, see PAR_*
C_WX = 11       # stored input matrix (K, G): C_WX .. C_WX + 4 (Dense, recurrent rows)
C_BIAS = 16     # W_: bias added to the input product (G)
# fields of recurrent rows
C_WR = 17       # stored recurrent matrix (state width, columns): C_WR .. C_WR + 4
C_STATE_H = 22  # S_: the state fed back through C_WR (its width is that matrix's rows)
C_HIDDEN = 23   # hidden size H
C_GATE_STRIDE = 24  # Hp: H padded to the SIMD width; gate k starts at k * Hp
C_REVERSE = 25  # 1: process frames last to first
C_EMIT = 26     # S_: the state vector the row writes out after each frame (h, or an LSTM's c)
FIRST_KIND_FIELD = 27

# the float parameters at W_[C_PARAMS]
PAR_F_ALPHA = 0
PAR_F_BETA = 1
PAR_G_ALPHA = 2
PAR_G_BETA = 3
PAR_H_ALPHA = 4
PAR_H_BETA = 5
PAR_CLIP = 6
NPARAMS = 7

FMT_FLOAT = 0   # the model's dtype
FMT_BF16 = 1    # bfloat16 bit patterns, two per float32 slot
FMT_INT8 = 2    # int8 codes, four per float32 slot, times one float scale per stored row
FMT_BF16_DOT = 3  # bf16 pairs of two consecutive rows per float32 slot; products round inputs to bf16
FMT_INT8_DOT = 4  # int8 quads of four consecutive rows per float32 slot, one scale per column; products quantise inputs to int8
WEIGHT_FORMATS = {"float": FMT_FLOAT, "bf16": FMT_BF16, "int8": FMT_INT8, "bf16dot": FMT_BF16_DOT,
                  "int8dot": FMT_INT8_DOT}
