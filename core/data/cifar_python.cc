// CIFAR-10 and CIFAR-100 "python version" batches (cifar-10-batches-py,
// cifar-100-python: what torchvision downloads, and so what Privacy Meter's
// data_dir holds): each file is a Python pickle of a dict whose b'data' is a
// numpy uint8 array [N, 3072] (the red, green and blue 32x32 planes of each
// image, as in the binary version) and whose b'labels' (CIFAR-10) or
// b'fine_labels' and b'coarse_labels' (CIFAR-100) are lists of N ints.
//
// Why a reader of our own: Debian ships no C++ library that reads pickles
// (`apt-cache search pickle` lists only Python packages), and a general
// unpickler runs whatever callables a file names. This one reads exactly the
// layout above and nothing else: the opcodes of protocols 2 to 4 that such a
// file uses, and four callables, each checked (numpy's array _reconstruct and
// dtype, _codecs.encode as Python 3 writes bytes at protocol 2, and bytes()).
// Every length is checked against what is left of the file, every count
// against a limit, and values live in one arena (no recursion anywhere, so a
// deeply nested file cannot exhaust the stack). Errors name the file and the
// byte offset of the opcode, never a value from it.
#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/data/internal.h"

namespace mia::data::internal {
namespace {

constexpr uint64_t kPixels = 3 * 32 * 32;
// Values one file may create, stack entries and container items: a batch of
// 50,000 images needs about 100,000 labels and 50,000 file names.
constexpr size_t kMaxValues = size_t{1} << 20;
constexpr size_t kMaxStack = size_t{1} << 20;
constexpr size_t kMaxItems = size_t{1} << 22;
constexpr size_t kMaxMemo = size_t{1} << 20;

struct Value {
  enum class Kind { kNone, kBool, kInt, kText, kBytes, kTuple, kList, kDict, kGlobal, kArray,
                    kDtype, kMark };
  Kind kind = Kind::kNone;
  int64_t number = 0;            // kInt, kBool
  std::string bytes;             // kText (UTF-8), kBytes, kGlobal ("module.name"), kDtype (its code)
  std::vector<Value*> items;     // kTuple, kList; kDict: key, value, key, value...
  // kArray, once built: its shape, dtype and raw bytes.
  std::vector<int64_t> shape;
  const Value* dtype = nullptr;
  bool fortran = false;
  bool built = false;
};

class Reader {
 public:
  Reader(const InputFile& file, std::string what) : file_(file), what_(std::move(what)) {}

  absl::StatusOr<const Value*> Run();

 private:
  absl::Status Error(const std::string& message) const {
    return absl::InvalidArgumentError(
        absl::StrCat(what_, ": ", message, At(file_, op_offset_), " (not a CIFAR python batch)"));
  }
  absl::StatusOr<Value*> New(Value::Kind kind) {
    if (arena_.size() >= kMaxValues) return Error(absl::StrCat("more than ", kMaxValues, " values"));
    arena_.emplace_back();
    arena_.back().kind = kind;
    return &arena_.back();
  }
  absl::Status Push(Value* v) {
    if (stack_.size() >= kMaxStack) return Error("stack too deep");
    stack_.push_back(v);
    return absl::OkStatus();
  }
  absl::StatusOr<Value*> Pop() {
    if (stack_.empty() || stack_.back()->kind == Value::Kind::kMark) {
      return Error("pop from an empty stack");
    }
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  // The values above the topmost mark, which is removed.
  absl::StatusOr<std::vector<Value*>> PopToMark() {
    size_t k = stack_.size();
    while (k > 0 && stack_[k - 1]->kind != Value::Kind::kMark) --k;
    if (k == 0) return Error("no mark on the stack");
    std::vector<Value*> out(stack_.begin() + k, stack_.end());
    stack_.resize(k - 1);
    return out;
  }
  absl::StatusOr<uint64_t> ReadUint(int bytes) {
    if (Left() < static_cast<uint64_t>(bytes)) return Error("truncated");
    uint64_t v = 0;
    for (int b = 0; b < bytes; ++b) v |= uint64_t{Byte(pos_ + b)} << (8 * b);
    pos_ += bytes;
    return v;
  }
  absl::StatusOr<std::string> ReadBytes(uint64_t n) {
    if (Left() < n) return Error(absl::StrCat("a length of ", n, " runs past the end"));
    std::string out = file_.bytes.substr(pos_, n);
    pos_ += n;
    return out;
  }
  absl::StatusOr<std::string> ReadLine() {
    const size_t end = file_.bytes.find('\n', pos_);
    if (end == std::string::npos || end - pos_ > 256) return Error("a bad global name");
    std::string out = file_.bytes.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  absl::Status AddItems(size_t count) {
    items_ += count;
    if (items_ > kMaxItems) return Error(absl::StrCat("more than ", kMaxItems, " items"));
    return absl::OkStatus();
  }
  absl::Status Memo(uint64_t index) {
    if (stack_.empty()) return Error("memoize with an empty stack");
    if (index >= kMaxMemo) return Error("memo index out of range");
    if (memo_.size() <= index) memo_.resize(index + 1, nullptr);
    memo_[index] = stack_.back();
    return absl::OkStatus();
  }
  absl::Status Get(uint64_t index) {
    if (index >= memo_.size() || memo_[index] == nullptr) return Error("unknown memo index");
    return Push(memo_[index]);
  }
  absl::Status Reduce();
  absl::Status Build();

  uint8_t Byte(uint64_t at) const { return static_cast<uint8_t>(file_.bytes[at]); }
  uint64_t Left() const { return file_.bytes.size() - pos_; }

  const InputFile& file_;
  std::string what_;
  uint64_t pos_ = 0;
  uint64_t op_offset_ = 0;
  std::deque<Value> arena_;  // stable addresses
  std::vector<Value*> stack_;
  std::vector<Value*> memo_;
  size_t items_ = 0;
};

bool IsName(const Value* v, const char* name) {
  return v != nullptr && (v->kind == Value::Kind::kText || v->kind == Value::Kind::kBytes) &&
         v->bytes == name;
}

bool IsFlag(const Value* v) {
  return v->kind == Value::Kind::kBool ||
         (v->kind == Value::Kind::kInt && (v->number == 0 || v->number == 1));
}

// UTF-8 text whose code points are all below 256, as those bytes (Python 3's
// protocol-2 form of bytes: _codecs.encode(text, 'latin1')).
bool Latin1(const std::string& text, std::string* out) {
  out->clear();
  out->reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const uint8_t c = static_cast<uint8_t>(text[i]);
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else if ((c == 0xc2 || c == 0xc3) && i + 1 < text.size() &&
               (static_cast<uint8_t>(text[i + 1]) & 0xc0) == 0x80) {
      out->push_back(static_cast<char>(((c & 0x1f) << 6) | (text[i + 1] & 0x3f)));
      ++i;
    } else {
      return false;
    }
  }
  return true;
}

absl::Status Reader::Reduce() {
  MIA_ASSIGN_OR_RETURN(Value * args, Pop());
  MIA_ASSIGN_OR_RETURN(Value * callable, Pop());
  if (callable->kind != Value::Kind::kGlobal || args->kind != Value::Kind::kTuple) {
    return Error("a call of something that is not a known function");
  }
  const std::string& f = callable->bytes;
  const std::vector<Value*>& a = args->items;
  if (f == "numpy.core.multiarray._reconstruct" || f == "numpy._core.multiarray._reconstruct") {
    // (ndarray, (0,), b'b'): an empty array that BUILD fills in.
    if (a.size() != 3 || a[0]->kind != Value::Kind::kGlobal || a[0]->bytes != "numpy.ndarray") {
      return Error("an unexpected numpy array reconstruction");
    }
    MIA_ASSIGN_OR_RETURN(Value * array, New(Value::Kind::kArray));
    return Push(array);
  }
  if (f == "numpy.dtype") {
    // ('u1', False, True)
    if (a.size() != 3 || (a[0]->kind != Value::Kind::kText && a[0]->kind != Value::Kind::kBytes) ||
        !IsFlag(a[1]) || !IsFlag(a[2])) {
      return Error("an unexpected numpy dtype");
    }
    MIA_ASSIGN_OR_RETURN(Value * dtype, New(Value::Kind::kDtype));
    dtype->bytes = a[0]->bytes;
    return Push(dtype);
  }
  if (f == "_codecs.encode") {
    if (a.size() != 2 || a[0]->kind != Value::Kind::kText || !IsName(a[1], "latin1")) {
      return Error("an unexpected _codecs.encode");
    }
    MIA_ASSIGN_OR_RETURN(Value * bytes, New(Value::Kind::kBytes));
    if (!Latin1(a[0]->bytes, &bytes->bytes)) return Error("bytes as text beyond latin-1");
    return Push(bytes);
  }
  if ((f == "__builtin__.bytes" || f == "builtins.bytes") && a.empty()) {
    MIA_ASSIGN_OR_RETURN(Value * bytes, New(Value::Kind::kBytes));
    return Push(bytes);
  }
  return Error("a call of a function this reader does not allow");
}

absl::Status Reader::Build() {
  MIA_ASSIGN_OR_RETURN(Value * state, Pop());
  if (stack_.empty() || state->kind != Value::Kind::kTuple) return Error("an unexpected BUILD");
  Value* target = stack_.back();
  const std::vector<Value*>& s = state->items;
  if (target->kind == Value::Kind::kDtype) return absl::OkStatus();  // byte order and flags
  if (target->kind != Value::Kind::kArray || target->built) return Error("an unexpected BUILD");
  // (version, shape, dtype, is_fortran, raw bytes)
  if (s.size() != 5 || s[0]->kind != Value::Kind::kInt || s[1]->kind != Value::Kind::kTuple ||
      s[2]->kind != Value::Kind::kDtype || !IsFlag(s[3]) || s[4]->kind != Value::Kind::kBytes) {
    return Error("an unexpected numpy array state");
  }
  if (s[1]->items.size() > 8) return Error("an array of more than 8 dimensions");
  for (const Value* d : s[1]->items) {
    if (d->kind != Value::Kind::kInt || d->number < 0) return Error("a bad array shape");
    target->shape.push_back(d->number);
  }
  target->dtype = s[2];
  target->fortran = s[3]->number != 0;
  target->bytes = s[4]->bytes;
  target->built = true;
  return absl::OkStatus();
}

absl::StatusOr<const Value*> Reader::Run() {
  while (true) {
    op_offset_ = pos_;
    if (Left() == 0) return Error("truncated: no STOP");
    const uint8_t op = Byte(pos_++);
    switch (op) {
      case 0x80: {  // PROTO
        MIA_ASSIGN_OR_RETURN(const uint64_t proto, ReadUint(1));
        if (proto < 2 || proto > 4) return Error(absl::StrCat("pickle protocol ", proto));
        break;
      }
      case 0x95:  // FRAME: a length hint
        MIA_RETURN_IF_ERROR(ReadUint(8).status());
        break;
      case '}':
      case ']':
      case ')':
      case '(':
      case 'N': {
        const Value::Kind kind = op == '}'   ? Value::Kind::kDict
                                 : op == ']' ? Value::Kind::kList
                                 : op == ')' ? Value::Kind::kTuple
                                 : op == '(' ? Value::Kind::kMark
                                             : Value::Kind::kNone;
        MIA_ASSIGN_OR_RETURN(Value * v, New(kind));
        MIA_RETURN_IF_ERROR(Push(v));
        break;
      }
      case 0x88:    // NEWTRUE
      case 0x89: {  // NEWFALSE
        MIA_ASSIGN_OR_RETURN(Value * v, New(Value::Kind::kBool));
        v->number = op == 0x88;
        MIA_RETURN_IF_ERROR(Push(v));
        break;
      }
      case 'J':
      case 'K':
      case 'M': {  // BININT (int32), BININT1, BININT2 (unsigned)
        const int width = op == 'J' ? 4 : op == 'K' ? 1 : 2;
        MIA_ASSIGN_OR_RETURN(const uint64_t raw, ReadUint(width));
        MIA_ASSIGN_OR_RETURN(Value * v, New(Value::Kind::kInt));
        v->number = op == 'J' ? static_cast<int32_t>(static_cast<uint32_t>(raw))
                              : static_cast<int64_t>(raw);
        MIA_RETURN_IF_ERROR(Push(v));
        break;
      }
      case 0x8a: {  // LONG1: n bytes, little-endian two's complement
        MIA_ASSIGN_OR_RETURN(const uint64_t n, ReadUint(1));
        if (n > 8) return Error("an integer wider than 64 bits");
        MIA_ASSIGN_OR_RETURN(uint64_t raw, ReadUint(static_cast<int>(n)));
        if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~uint64_t{0} << (8 * n);
        MIA_ASSIGN_OR_RETURN(Value * v, New(Value::Kind::kInt));
        v->number = static_cast<int64_t>(raw);
        MIA_RETURN_IF_ERROR(Push(v));
        break;
      }
      case 'T':     // BINSTRING (Python 2 str: bytes here)
      case 'U':     // SHORT_BINSTRING
      case 'B':     // BINBYTES
      case 'C':     // SHORT_BINBYTES
      case 0x8e:    // BINBYTES8
      case 'X':     // BINUNICODE
      case 0x8c:    // SHORT_BINUNICODE
      case 0x8d: {  // BINUNICODE8
        const int width = (op == 'U' || op == 'C' || op == 0x8c) ? 1
                          : (op == 0x8e || op == 0x8d)           ? 8
                                                                 : 4;
        MIA_ASSIGN_OR_RETURN(const uint64_t n, ReadUint(width));
        MIA_ASSIGN_OR_RETURN(Value * v, New((op == 'X' || op == 0x8c || op == 0x8d)
                                                ? Value::Kind::kText
                                                : Value::Kind::kBytes));
        MIA_ASSIGN_OR_RETURN(v->bytes, ReadBytes(n));
        MIA_RETURN_IF_ERROR(Push(v));
        break;
      }
      case 'q':
      case 'r': {  // BINPUT, LONG_BINPUT
        MIA_ASSIGN_OR_RETURN(const uint64_t index, ReadUint(op == 'q' ? 1 : 4));
        MIA_RETURN_IF_ERROR(Memo(index));
        break;
      }
      case 0x94:  // MEMOIZE
        MIA_RETURN_IF_ERROR(Memo(memo_.size()));
        break;
      case 'h':
      case 'j': {  // BINGET, LONG_BINGET
        MIA_ASSIGN_OR_RETURN(const uint64_t index, ReadUint(op == 'h' ? 1 : 4));
        MIA_RETURN_IF_ERROR(Get(index));
        break;
      }
      case 'c': {  // GLOBAL "module\nname\n"
        MIA_ASSIGN_OR_RETURN(const std::string module, ReadLine());
        MIA_ASSIGN_OR_RETURN(const std::string name, ReadLine());
        MIA_ASSIGN_OR_RETURN(Value * v, New(Value::Kind::kGlobal));
        v->bytes = absl::StrCat(module, ".", name);
        MIA_RETURN_IF_ERROR(Push(v));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        MIA_ASSIGN_OR_RETURN(Value * name, Pop());
        MIA_ASSIGN_OR_RETURN(Value * module, Pop());
        if (name->kind != Value::Kind::kText || module->kind != Value::Kind::kText ||
            name->bytes.size() > 256 || module->bytes.size() > 256) {
          return Error("a bad global name");
        }
        MIA_ASSIGN_OR_RETURN(Value * v, New(Value::Kind::kGlobal));
        v->bytes = absl::StrCat(module->bytes, ".", name->bytes);
        MIA_RETURN_IF_ERROR(Push(v));
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87:
      case 't': {  // TUPLE1, TUPLE2, TUPLE3, TUPLE (to the mark)
        std::vector<Value*> items;
        if (op == 't') {
          MIA_ASSIGN_OR_RETURN(items, PopToMark());
        } else {
          items.resize(op - 0x84);
          for (size_t k = items.size(); k > 0; --k) {
            MIA_ASSIGN_OR_RETURN(items[k - 1], Pop());
          }
        }
        MIA_ASSIGN_OR_RETURN(Value * v, New(Value::Kind::kTuple));
        MIA_RETURN_IF_ERROR(AddItems(items.size()));
        v->items = std::move(items);
        MIA_RETURN_IF_ERROR(Push(v));
        break;
      }
      case 'a':
      case 'e': {  // APPEND, APPENDS
        std::vector<Value*> items;
        if (op == 'a') {
          MIA_ASSIGN_OR_RETURN(Value * item, Pop());
          items.push_back(item);
        } else {
          MIA_ASSIGN_OR_RETURN(items, PopToMark());
        }
        if (stack_.empty() || stack_.back()->kind != Value::Kind::kList) {
          return Error("append to something that is not a list");
        }
        MIA_RETURN_IF_ERROR(AddItems(items.size()));
        stack_.back()->items.insert(stack_.back()->items.end(), items.begin(), items.end());
        break;
      }
      case 's':
      case 'u': {  // SETITEM, SETITEMS
        std::vector<Value*> items;
        if (op == 's') {
          items.resize(2);
          MIA_ASSIGN_OR_RETURN(items[1], Pop());
          MIA_ASSIGN_OR_RETURN(items[0], Pop());
        } else {
          MIA_ASSIGN_OR_RETURN(items, PopToMark());
          if (items.size() % 2 != 0) return Error("an odd number of dict items");
        }
        if (stack_.empty() || stack_.back()->kind != Value::Kind::kDict) {
          return Error("set an item of something that is not a dict");
        }
        MIA_RETURN_IF_ERROR(AddItems(items.size()));
        stack_.back()->items.insert(stack_.back()->items.end(), items.begin(), items.end());
        break;
      }
      case 'R':
        MIA_RETURN_IF_ERROR(Reduce());
        break;
      case 'b':
        MIA_RETURN_IF_ERROR(Build());
        break;
      case '.': {  // STOP
        MIA_ASSIGN_OR_RETURN(Value * result, Pop());
        return result;
      }
      default:
        return Error(absl::StrCat("pickle opcode 0x", absl::Hex(op, absl::kZeroPad2),
                                  " is not supported"));
    }
  }
}

// The value of `key` (text or bytes) in `dict`; the last one when given twice,
// as Python keeps.
const Value* Find(const Value* dict, const std::string& key) {
  const Value* found = nullptr;
  for (size_t k = 0; k + 1 < dict->items.size(); k += 2) {
    if (IsName(dict->items[k], key.c_str())) found = dict->items[k + 1];
  }
  return found;
}

// One batch file: its images (raw bytes, [rows, 3072]) and each label list.
struct Batch {
  int64_t rows = 0;
  std::string pixels;
  std::vector<std::vector<int64_t>> labels;  // per layout.label_keys
};

absl::StatusOr<Batch> ReadBatch(const InputFile& file, const std::string& path,
                                const CifarPythonLayout& layout,
                                const std::vector<int>& label_limits) {
  Reader reader(file, path);
  MIA_ASSIGN_OR_RETURN(const Value* root, reader.Run());
  auto bad = [&](const std::string& message) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", message, " (not a CIFAR python batch)"));
  };
  if (root->kind != Value::Kind::kDict) return bad("the pickle is not a dict");
  const Value* data = Find(root, "data");
  if (data == nullptr || data->kind != Value::Kind::kArray || !data->built) {
    return bad("no 'data' array");
  }
  const std::string code = data->dtype->bytes;
  if (code != "u1" && code != "|u1" && code != "uint8") return bad("'data' is not uint8");
  if (data->fortran) return bad("'data' is in Fortran order");
  if (data->shape.size() != 2 || data->shape[1] != static_cast<int64_t>(kPixels) ||
      data->shape[0] < 1) {
    return bad("'data' is not shaped [N, 3072]");
  }
  Batch batch;
  batch.rows = data->shape[0];
  if (data->bytes.size() != static_cast<uint64_t>(batch.rows) * kPixels) {
    return bad(absl::StrCat("'data' holds ", data->bytes.size(), " bytes, its shape ",
                            static_cast<uint64_t>(batch.rows) * kPixels));
  }
  batch.pixels = data->bytes;
  for (size_t k = 0; k < layout.label_keys.size(); ++k) {
    const std::string& key = layout.label_keys[k];
    const Value* list = Find(root, key);
    if (list == nullptr || list->kind != Value::Kind::kList) {
      return bad(absl::StrCat("no '", key, "' list"));
    }
    if (static_cast<int64_t>(list->items.size()) != batch.rows) {
      return bad(absl::StrCat("'", key, "' has ", list->items.size(), " entries for ",
                              batch.rows, " images"));
    }
    std::vector<int64_t> labels(list->items.size());
    for (size_t i = 0; i < list->items.size(); ++i) {
      const Value* v = list->items[i];
      if (v->kind != Value::Kind::kInt || v->number < 0 || v->number >= label_limits[k]) {
        return bad(absl::StrCat("'", key, "' entry ", i, " is not an integer in 0..",
                                label_limits[k] - 1));
      }
      labels[i] = v->number;
    }
    batch.labels.push_back(std::move(labels));
  }
  return batch;
}

}  // namespace

absl::StatusOr<Dataset> LoadCifarPython(const DataSource& source, const std::string& folder,
                                        const LoadLimits& limits, const CifarPythonLayout& layout,
                                        int label_index, int num_classes) {
  const std::vector<int>& label_limits = layout.label_limits;
  MIA_ASSIGN_OR_RETURN(const std::vector<std::string> splits, SplitParts(source));
  std::vector<Batch> batches;
  uint64_t rows = 0;
  for (const std::string& split : splits) {
    for (const std::string& name : split == "train" ? layout.train_files : layout.test_files) {
      MIA_ASSIGN_OR_RETURN(const std::string path, FindFile(folder, name));
      MIA_ASSIGN_OR_RETURN(const InputFile file, ReadInput(path, limits.max_bytes));
      MIA_ASSIGN_OR_RETURN(Batch batch, ReadBatch(file, path, layout, label_limits));
      rows += static_cast<uint64_t>(batch.rows);
      MIA_RETURN_IF_ERROR(CheckSize(absl::StrCat(layout.format, ":", source.path), rows, kPixels,
                                    limits));
      batches.push_back(std::move(batch));
    }
  }
  Dataset dataset;
  dataset.name = absl::StrCat(layout.format, ":", source.path, ":", source.split);
  dataset.sample_shape = {3, 32, 32};
  dataset.num_classes = num_classes;
  dataset.features.resize(static_cast<size_t>(rows * kPixels));
  dataset.labels.reserve(static_cast<size_t>(rows));
  const float* to_unit = ByteToUnitTable();
  float* out = dataset.features.data();
  for (Batch& batch : batches) {
    const auto* pixels = reinterpret_cast<const uint8_t*>(batch.pixels.data());
    for (uint64_t i = 0; i < batch.pixels.size(); ++i) out[i] = to_unit[pixels[i]];
    out += batch.pixels.size();
    const std::vector<int64_t>& labels = batch.labels[label_index];
    dataset.labels.insert(dataset.labels.end(), labels.begin(), labels.end());
    batch = Batch();
  }
  return dataset;
}

}  // namespace mia::data::internal
