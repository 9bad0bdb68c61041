/*
** The wire format of the value codec: its tags and limits, shared by the
** C codec (codec_*.c) and the Swift reader and writer, which import them
** from here and write none of them again.
**
** Format (version 1). All multi-byte numbers are little-endian.
**
**   buffer   = 'A' 'L' 0x01 varint(count) value*count   (no trailing bytes)
**   varint   = unsigned LEB128, at most 10 bytes, no bits beyond 64
**   value    = NIL | FALSE | TRUE
**            | INT    int64 (8 bytes)
**            | FLOAT  double bits (8 bytes)     (math.type survives)
**            | STRING varint(len) bytes          (binary-safe)
**            | TABLE  (key value)* END value     (the last value is the
**                                                 metatable, NIL if none)
**            | REF    varint(distance)           (an earlier table/function)
**            | FUNCTION varint(len) bytecode checksum(8) varint(nups) upval*
**            | NAMED  varint(len) module varint(len) field
**            | HANDLE kind(1) pointer(8)
**   upval    = 0x00 value                        (the upvalue's own value)
**            | 0x01 varint(distance) varint(index)   (shared upvalue of an
**                                                 earlier function)
**            | 0x02 varint(distance) varint(index)   (shared upvalue of a
**                                                 later function, nested in
**                                                 an earlier upvalue)
**
** Tables and functions get object ids 0, 1, 2, ... in order of first
** appearance (a TABLE or FUNCTION tag takes the next id before its contents
** are written). A REF gives 'next_id - id', a distance back, so cycles and
** shared references survive and a self-contained span (one function with
** all it refers to) can be cut out and decoded on its own: ids inside it
** stay relative. Table contents use raw access; the metatable is set after
** the table is filled with 'rawset'.
**
** A function travels as its bytecode ('lua_dump' with debug info, so that
** tracebacks keep 'file:line'), guarded by an FNV-1a 64 checksum that is
** checked before 'lua_load' (corrupted bytecode can crash Lua 5.4.4). Each
** upvalue either carries its value or, when 'lua_upvalueid' shows that it is
** shared with an upvalue of a function written before it in the buffer,
** the distance to that function's id and the upvalue index; decoding joins
** them with 'lua_upvaluejoin'. That function usually came first (0x01, a
** distance back), but it may be one nested in an earlier upvalue of this
** very function, so with a higher id (0x02, a distance forward): a task
** that calls a local helper, where both use 'x' and the helper is met
** first. Either way it is decoded completely before the join. A recursive local function is a REF to
** itself.
**
** NAMED values are those reachable from 'package.loaded': a module (its
** field is empty) or a table or function stored under a string key of a
** module. Decoding takes 'package.loaded[module]' (or 'require(module)')
** and then the field. So a function's '_ENV' upvalue that is '_G' binds to
** the destination's globals.
**
** An upvalue whose value is NAMED is always written as 0x00 NAMED, never
** as a shared upvalue, even when an earlier function of the buffer has the
** same upvalue: the name gives the same object in the destination anyway.
** So every closure of one chunk (all share the chunk's '_ENV') decodes on
** its own, and two values encoded together stay separable ('fn' and a
** 'callback' of its options). The one consequence: two closures that share
** an upvalue holding a module no longer share the cell after the move;
** assigning a new value to it in one is not seen by the other. (Decoding
** with ATL_CODEC_JOINENV joins the '_ENV' ones into one cell regardless.)
**
** The named values are cached per state (see "Values that travel by
** name" in codec_names.c). A value found in the cache is checked to be
** still in its place, so a module or field that was replaced or removed is never named. A
** module required after the cache was built is seen by the first encoding
** call that meets a function (a module of plain data, without functions,
** may travel by value until then). A table or Lua function added to a
** module table already loaded may be missed, and then travels by value,
** until something rebuilds the cache.
**
** HANDLE carries a host object of kind ATL_H_*; the encoding buffer retains
** it, decoding pushes a new handle (which retains it again).
**
** Anything else (other userdata, light userdata, threads, C functions that
** no module holds) is refused with an error naming its path and type.
** Nesting deeper than ATL_CODEC_MAXDEPTH tables/functions is refused both
** ways. Decoding checks every byte it reads and never trusts the input.
**
** Below, tag NIL is ATL_T_NIL and so on, upvalue kind 0x00 is ATL_UP_VALUE,
** 0x01 ATL_UP_SHARED and 0x02 ATL_UP_SHAREDFWD.
*/
#ifndef atl_codec_h
#define atl_codec_h

/* A C enum that Swift imports as a Swift enum whose switches are
** exhaustive: no value outside the listed ones is ever valid. The cases
** of each are numbered without gaps, so that Swift can check a number
** from C or from bytes against the first and the last case. */
#if !defined(ATL_CLOSED_ENUM)
#define ATL_CLOSED_ENUM __attribute__((enum_extensibility(closed)))
#endif

/* Tags: the first byte of every value. */
typedef enum ATL_CLOSED_ENUM atl_Tag {
  ATL_T_NIL      = 0,
  ATL_T_FALSE    = 1,
  ATL_T_TRUE     = 2,
  ATL_T_INT      = 3,
  ATL_T_FLOAT    = 4,
  ATL_T_STRING   = 5,
  ATL_T_TABLE    = 6,
  ATL_T_REF      = 7,
  ATL_T_FUNCTION = 8,
  ATL_T_NAMED    = 9,
  ATL_T_HANDLE   = 10,
  ATL_T_END      = 11   /* after the last entry of a TABLE */
} atl_Tag;

/* The first byte of each 'upval' of a FUNCTION. */
typedef enum ATL_CLOSED_ENUM atl_UpKind {
  ATL_UP_VALUE     = 0,   /* the upvalue's own value follows */
  ATL_UP_SHARED    = 1,   /* shared with an earlier function */
  ATL_UP_SHAREDFWD = 2    /* shared with a later function, nested in an
                             earlier upvalue */
} atl_UpKind;

/* The header and the limits. */
enum {
  ATL_CODEC_MAGIC0      = 'A',  /* the two bytes that open a buffer */
  ATL_CODEC_MAGIC1      = 'L',
  ATL_CODEC_VERSION     = 1,    /* the byte after them */
  ATL_CODEC_MAXVARINT   = 10,   /* the longest varint, in bytes */
  ATL_CODEC_MAXUPVALUES = 255,  /* upvalues of one function (Lua's limit) */
  ATL_CODEC_MAXDEPTH    = 100   /* deepest nesting of tables and functions
                                   that the codec accepts, both ways */
};

#endif
