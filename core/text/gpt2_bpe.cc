// GPT-2's byte-level BPE: the file formats, the pre-tokenization regex and
// the merge loop.
#include "core/text/gpt2_bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/common/file_util.h"
#include "core/common/sha256.h"
#include "core/common/status_macros.h"
#include "core/common/utf8.h"
#include "nlohmann/json.hpp"

namespace mia::text {
namespace {

// GPT-2's pattern (openai/gpt-2 src/encoder.py, run by Python's `regex`
// module), with one change of spelling: PCRE2's \s also takes U+180E
// MONGOLIAN VOWEL SEPARATOR, which Unicode stopped counting as white space in
// 6.3 and `regex` does not take, so here \s is [^\S\x{180E}] and U+180E
// joins the "other" class. Every other code point of Unicode 14 (PCRE2
// 10.42's tables) is classed as `regex` classes it (checked over all code
// points; docs/datasets.md).
constexpr char kPattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?(?:[^\s\p{L}\p{N}]|\x{180E})+|)"
    R"([^\S\x{180E}]+(?![\S\x{180E}])|[^\S\x{180E}]+)";

// Largest vocabulary or merges file accepted (GPT-2's are about 1 MB).
constexpr uint64_t kMaxFileBytes = uint64_t{1} << 30;

// The compiled pattern: immutable, shared by every thread (pcre2_match only
// reads it; each call has its own match data).
const pcre2_code* Pattern() {
  static const pcre2_code* const code = [] {
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* compiled =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (compiled == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      std::fprintf(stderr, "gpt2_bpe: cannot compile the GPT-2 pattern: %s\n",
                   reinterpret_cast<const char*>(message));
      std::abort();
    }
    // JIT when the platform has it; pcre2_match falls back to the
    // interpreter by itself otherwise.
    pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);
    return compiled;
  }();
  return code;
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

// Appends the regex pieces of `run` (valid UTF-8) to `pieces`, as findall does.
void SplitValidRun(absl::string_view run, pcre2_match_data* match,
                   std::vector<absl::string_view>* pieces) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(run.data());
  size_t offset = 0;
  while (offset < run.size()) {
    int rc =
        pcre2_match(Pattern(), subject, run.size(), offset, PCRE2_NO_UTF_CHECK, match, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(Pattern(), subject, run.size(), offset, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                       match, nullptr);
    }
    if (rc < 0) {
      // Cannot happen: every character is \s, \p{L}, \p{N} or none of them,
      // so some alternative matches at every offset. Keep the rest whole
      // rather than lose it.
      pieces->push_back(run.substr(offset));
      return;
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
    pieces->push_back(run.substr(ovector[0], ovector[1] - ovector[0]));
    offset = ovector[1];
  }
}

// The byte that code point `c` stands for in token strings, or -1.
int UnicodeToByte(char32_t c) {
  static const auto* const table = [] {
    auto* t = new std::vector<int>(0x144, -1);
    for (int b = 0; b < 256; ++b) (*t)[GptByteToUnicode(static_cast<uint8_t>(b))] = b;
    return t;
  }();
  return c < table->size() ? (*table)[c] : -1;
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else {  // the alphabet stops at U+0143
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// `bytes` in GPT-2's alphabet.
std::string BytesToTokenString(absl::string_view bytes) {
  std::string out;
  for (char b : bytes) AppendUtf8(GptByteToUnicode(static_cast<uint8_t>(b)), &out);
  return out;
}

// The bytes a token string stands for; false when it holds a character
// outside the alphabet (or is not UTF-8).
bool TokenStringToBytes(absl::string_view text, std::string* bytes) {
  bytes->clear();
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t length = Utf8SequenceLength(text, pos);
    if (length == 0 || length > 2) return false;
    char32_t c = static_cast<uint8_t>(text[pos]);
    if (length == 2) c = ((c & 0x1F) << 6) | (static_cast<uint8_t>(text[pos + 1]) & 0x3F);
    const int b = UnicodeToByte(c);
    if (b < 0) return false;
    bytes->push_back(static_cast<char>(b));
    pos += length;
  }
  return true;
}

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

void HashU64(Sha256* hasher, uint64_t value) {
  uint8_t bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  hasher->Update(bytes, sizeof(bytes));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return FileErrnoStatus(errno, path, "open");
  std::string bytes;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    bytes.append(buffer, static_cast<size_t>(in.gcount()));
    if (bytes.size() > kMaxFileBytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path, ": larger than ", kMaxFileBytes, " bytes"));
    }
  }
  if (in.bad()) return FileErrnoStatus(errno, path, "read");
  return bytes;
}

// Reads vocab.json through nlohmann's SAX interface, so that each member is
// seen in file order (for positions in messages) and repeated tokens are
// caught rather than silently overwritten.
class VocabReader : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit VocabReader(const std::string& path) : path_(path) {}

  absl::Status status() const { return status_; }
  // (token bytes, id) in file order.
  std::vector<std::pair<std::string, int64_t>>& members() { return members_; }

  bool null() override { return Bad("the id is not a non-negative integer"); }
  bool boolean(bool) override { return Bad("the id is not a non-negative integer"); }
  bool number_integer(number_integer_t value) override {
    if (value < 0) return Bad("the id is not a non-negative integer");
    return Value(static_cast<uint64_t>(value));
  }
  bool number_unsigned(number_unsigned_t value) override { return Value(value); }
  bool number_float(number_float_t, const string_t&) override {
    return Bad("the id is not a non-negative integer");
  }
  bool string(string_t&) override { return Bad("the id is not a non-negative integer"); }
  bool binary(binary_t&) override { return Bad("the id is not a non-negative integer"); }
  bool start_object(std::size_t) override {
    if (depth_++ == 0) return true;
    return Bad("the id is not a non-negative integer");
  }
  bool key(string_t& token) override {
    ++member_;
    std::string bytes;
    if (!TokenStringToBytes(token, &bytes)) {
      return Bad("the token has a character outside GPT-2's byte alphabet");
    }
    members_.emplace_back(std::move(bytes), -1);
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ == 0) return Fail(absl::StrCat(path_, ": not a JSON object"));
    return Bad("the id is not a non-negative integer");
  }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception&) override {
    // Not the exception's text: it quotes what it read.
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat(path_, ": invalid JSON at offset ", position > 0 ? position - 1 : 0));
    }
    return false;
  }

 private:
  bool Value(uint64_t id) {
    if (depth_ != 1 || members_.empty()) return Fail(absl::StrCat(path_, ": not a JSON object"));
    members_.back().second = static_cast<int64_t>(std::min<uint64_t>(id, INT32_MAX + uint64_t{1}));
    return true;
  }
  bool Bad(absl::string_view what) {
    if (depth_ == 0) return Fail(absl::StrCat(path_, ": not a JSON object"));
    return Fail(absl::StrCat(path_, ": member ", member_, ": ", what));
  }
  bool Fail(std::string message) {
    if (status_.ok()) status_ = absl::InvalidArgumentError(std::move(message));
    return false;
  }

  const std::string& path_;
  absl::Status status_;
  int depth_ = 0;
  int64_t member_ = 0;
  std::vector<std::pair<std::string, int64_t>> members_;
};

// tokens[id] from vocab.json.
absl::StatusOr<std::vector<std::string>> ReadVocab(const std::string& path) {
  MIA_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(path));
  const size_t bad = FindInvalidUtf8(bytes);
  if (bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": invalid UTF-8 at offset ", bad));
  }
  VocabReader reader(path);
  const bool parsed = nlohmann::json::sax_parse(bytes, &reader);
  MIA_RETURN_IF_ERROR(reader.status());
  if (!parsed) return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON"));
  auto& members = reader.members();
  if (members.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no tokens"));
  const int64_t count = static_cast<int64_t>(members.size());
  std::vector<std::string> tokens(members.size());
  std::vector<int64_t> member_of(members.size(), 0);
  for (int64_t m = 0; m < count; ++m) {
    const int64_t id = members[m].second;
    if (id >= count) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": member ", m + 1, ": id ", id,
                                                     " is not below the token count ", count));
    }
    if (member_of[id] != 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": member ", m + 1, ": id ", id,
                                                     " was given to member ", member_of[id],
                                                     " already"));
    }
    member_of[id] = m + 1;
    tokens[id] = std::move(members[m].first);
  }
  return tokens;
}

struct MergesFile {
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<int64_t> lines;  // [rank]: 1-based line
};

absl::StatusOr<MergesFile> ReadMerges(const std::string& path,
                                      const std::vector<std::string>& tokens) {
  MIA_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(path));
  const size_t bad = FindInvalidUtf8(bytes);
  if (bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": invalid UTF-8 at offset ", bad));
  }
  absl::flat_hash_map<absl::string_view, int32_t> id_of;
  for (size_t i = 0; i < tokens.size(); ++i) id_of.emplace(tokens[i], static_cast<int32_t>(i));
  MergesFile out;
  absl::string_view text = bytes;
  int64_t line_no = 0;
  std::string left, right;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    absl::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == absl::string_view::npos ? text.size() : eol + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && absl::StartsWith(line, "#version"))) continue;
    const auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": line ", line_no, ": ", what));
    };
    const size_t space = line.find(' ');
    if (space == absl::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != absl::string_view::npos) {
      return error("expected two tokens separated by one space");
    }
    if (!TokenStringToBytes(line.substr(0, space), &left) ||
        !TokenStringToBytes(line.substr(space + 1), &right)) {
      return error("a character outside GPT-2's byte alphabet");
    }
    const auto l = id_of.find(left);
    const auto r = id_of.find(right);
    if (l == id_of.end() || r == id_of.end()) {
      return error(absl::StrCat(l == id_of.end() ? "the left" : "the right",
                                " token is not in the vocabulary"));
    }
    out.merges.emplace_back(l->second, r->second);
    out.lines.push_back(line_no);
  }
  return out;
}

}  // namespace

char32_t GptByteToUnicode(uint8_t b) {
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  if (printable) return b;
  // The n-th non-printable byte (in byte order) stands for 256 + n.
  int n = 0;
  for (int c = 0; c < b; ++c) {
    const bool p = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
    if (!p) ++n;
  }
  return static_cast<char32_t>(256 + n);
}

ByteBpeTokenizer::~ByteBpeTokenizer() = default;

absl::StatusOr<std::unique_ptr<ByteBpeTokenizer>> ByteBpeTokenizer::Create(
    std::vector<std::string> tokens, std::vector<std::pair<int32_t, int32_t>> merges,
    int32_t eot_id, const std::function<std::string(size_t)>& where) {
  const auto name = [&](size_t rank) { return where ? where(rank) : absl::StrCat("merge ", rank); };
  if (tokens.empty() || tokens.size() > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError("byte BPE: the vocabulary is empty or too large");
  }
  const int32_t count = static_cast<int32_t>(tokens.size());
  absl::flat_hash_map<absl::string_view, int32_t> id_of;
  for (int32_t i = 0; i < count; ++i) {
    if (tokens[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("byte BPE: token ", i, " is empty"));
    }
    if (!id_of.emplace(tokens[i], i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("byte BPE: tokens ", id_of[tokens[i]], " and ", i, " are the same"));
    }
  }
  if (eot_id < 0 || eot_id >= count || tokens[eot_id] != kEndOfText) {
    const auto it = id_of.find(kEndOfText);
    return absl::InvalidArgumentError(
        it == id_of.end()
            ? std::string("byte BPE: no \"<|endoftext|>\" token")
            : absl::StrCat("byte BPE: the end-of-text token is ", it->second, ", not ", eot_id));
  }
  auto tokenizer = std::unique_ptr<ByteBpeTokenizer>(new ByteBpeTokenizer());
  // Tokens the merge loop can reach so far: bytes, then merge results.
  std::vector<bool> reachable(tokens.size(), false);
  for (int b = 0; b < 256; ++b) {
    const auto it = id_of.find(std::string(1, static_cast<char>(b)));
    if (it == id_of.end()) {
      return absl::InvalidArgumentError(absl::StrCat("byte BPE: byte ", b, " has no token"));
    }
    tokenizer->byte_token_[b] = it->second;
    reachable[it->second] = true;
  }
  tokenizer->ranks_.reserve(merges.size());
  std::string merged;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [left, right] = merges[rank];
    if (left < 0 || left >= count || right < 0 || right >= count) {
      return absl::InvalidArgumentError(absl::StrCat(name(rank), ": a token id out of range"));
    }
    if (!reachable[left] || !reachable[right]) {
      return absl::InvalidArgumentError(
          absl::StrCat(name(rank), ": the ", reachable[left] ? "right" : "left",
                       " token is neither a byte nor the result of an earlier merge"));
    }
    merged = tokens[left] + tokens[right];
    const auto it = id_of.find(merged);
    if (it == id_of.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name(rank), ": the merged token is not in the vocabulary"));
    }
    if (!tokenizer->ranks_
             .emplace(PairKey(left, right), std::make_pair(static_cast<int32_t>(rank), it->second))
             .second) {
      return absl::InvalidArgumentError(absl::StrCat(
          name(rank), ": the same merge as ", name(tokenizer->ranks_[PairKey(left, right)].first)));
    }
    reachable[it->second] = true;
  }

  Sha256 hasher;
  hasher.Update(absl::string_view("mia-byte-bpe-v1"));
  HashU64(&hasher, tokens.size());
  for (const std::string& token : tokens) {
    HashU64(&hasher, token.size());
    hasher.Update(token);
  }
  HashU64(&hasher, merges.size());
  for (const auto& [left, right] : merges) {
    HashU64(&hasher, static_cast<uint64_t>(left));
    HashU64(&hasher, static_cast<uint64_t>(right));
  }
  HashU64(&hasher, static_cast<uint64_t>(eot_id));
  tokenizer->fingerprint_ = hasher.HexDigest();
  tokenizer->tokens_ = std::move(tokens);
  tokenizer->merges_ = std::move(merges);
  tokenizer->eot_id_ = eot_id;
  return tokenizer;
}

std::vector<absl::string_view> ByteBpeTokenizer::PreTokenize(absl::string_view text) {
  std::vector<absl::string_view> pieces;
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> match(
      pcre2_match_data_create_from_pattern(Pattern(), nullptr));
  while (!text.empty()) {
    const size_t bad = FindInvalidUtf8(text);
    if (bad != 0) {
      const size_t run = bad == absl::string_view::npos ? text.size() : bad;
      SplitValidRun(text.substr(0, run), match.get(), &pieces);
      text.remove_prefix(run);
      continue;
    }
    pieces.push_back(text.substr(0, 1));  // an invalid byte: a piece of its own
    text.remove_prefix(1);
  }
  return pieces;
}

void ByteBpeTokenizer::EncodeWord(absl::string_view word, std::vector<int32_t>* out) const {
  const int n = static_cast<int>(word.size());
  if (n == 1) {
    out->push_back(byte_token_[static_cast<uint8_t>(word[0])]);
    return;
  }
  // Symbols in a linked list over the word's byte positions; candidate merges
  // in a min-heap by (rank, position), checked when popped. Merging the
  // lowest-ranked pair at its leftmost position first is GPT-2's "all
  // occurrences left to right": every merge's parts come from earlier merges
  // (Create checks it), so a merge never creates a pair ranked before itself.
  std::vector<int32_t> id(n), prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    id[i] = byte_token_[static_cast<uint8_t>(word[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t left;
    int32_t right;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  std::vector<Candidate> heap;
  const auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    const auto it = ranks_.find(PairKey(id[pos], id[next[pos]]));
    if (it == ranks_.end()) return;
    heap.push_back({it->second.first, pos, id[pos], id[next[pos]]});
    std::push_heap(heap.begin(), heap.end(), std::greater<Candidate>());
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<Candidate>());
    const Candidate c = heap.back();
    heap.pop_back();
    // Stale when either symbol changed or was merged away since the push.
    if (id[c.pos] != c.left || next[c.pos] < 0 || id[next[c.pos]] != c.right) continue;
    const int right = next[c.pos];
    id[c.pos] = ranks_.find(PairKey(c.left, c.right))->second.second;
    id[right] = -1;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (int i = 0; i >= 0; i = next[i]) out->push_back(id[i]);
}

std::vector<int32_t> ByteBpeTokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  for (absl::string_view piece : PreTokenize(text)) EncodeWord(piece, &ids);
  return ids;
}

absl::StatusOr<std::string> ByteBpeTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", ids[i], " at position ", i,
                                                     " is outside 0..", vocab_size() - 1));
    }
    text += tokens_[ids[i]];
  }
  return text;
}

absl::Status ByteBpeTokenizer::Save(const std::string& folder) const {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t i = 0; i < tokens_.size(); ++i) {
    vocab[i == static_cast<size_t>(eot_id_) ? tokens_[i] : BytesToTokenString(tokens_[i])] = i;
  }
  std::string merges = "#version: 0.2\n";
  for (const auto& [left, right] : merges_) {
    absl::StrAppend(&merges, BytesToTokenString(tokens_[left]), " ",
                    BytesToTokenString(tokens_[right]), "\n");
  }
  MIA_RETURN_IF_ERROR(WriteFileAtomically(folder + "/vocab.json", vocab.dump() + "\n"));
  return WriteFileAtomically(folder + "/merges.txt", merges);
}

absl::StatusOr<std::unique_ptr<ByteBpeTokenizer>> LoadGpt2Bpe(const std::string& vocab_path,
                                                              const std::string& merges_path) {
  MIA_ASSIGN_OR_RETURN(std::vector<std::string> tokens, ReadVocab(vocab_path));
  MIA_ASSIGN_OR_RETURN(MergesFile merges, ReadMerges(merges_path, tokens));
  int32_t eot_id = -1;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == kEndOfText) eot_id = static_cast<int32_t>(i);
  }
  if (eot_id < 0) {
    return absl::InvalidArgumentError(absl::StrCat(vocab_path, ": no \"<|endoftext|>\" token"));
  }
  const std::vector<int64_t>& lines = merges.lines;
  absl::StatusOr<std::unique_ptr<ByteBpeTokenizer>> tokenizer = ByteBpeTokenizer::Create(
      std::move(tokens), std::move(merges.merges), eot_id,
      [&](size_t rank) { return absl::StrCat(merges_path, ": line ", lines[rank]); });
  if (!tokenizer.ok() && !absl::StartsWith(tokenizer.status().message(), merges_path)) {
    return absl::InvalidArgumentError(absl::StrCat(vocab_path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<ByteBpeTokenizer>> LoadGpt2Bpe(const std::string& folder) {
  const auto exists = [](const std::string& path) { return std::ifstream(path).good(); };
  for (const auto& [vocab, merges] :
       {std::pair<const char*, const char*>{"vocab.json", "merges.txt"},
        {"encoder.json", "vocab.bpe"}}) {
    const std::string vocab_path = absl::StrCat(folder, "/", vocab);
    const std::string merges_path = absl::StrCat(folder, "/", merges);
    if (exists(vocab_path) && exists(merges_path)) return LoadGpt2Bpe(vocab_path, merges_path);
  }
  return absl::NotFoundError(
      absl::StrCat(folder, ": neither vocab.json + merges.txt nor encoder.json + vocab.bpe"));
}

}  // namespace mia::text
