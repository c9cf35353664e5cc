#include "inventory/live_index.h"

#include <algorithm>

namespace dc::inventory {

void LiveIndex::reset(TimePoint cutoff) {
  for (auto& p : types_) p = PerType{};
  applied_ = ms(cutoff);
}

void LiveIndex::add(const std::string& key, const Entry& e) {
  auto& p = types_[slot(e.type)];
  ++p.deployed;
  const auto addr = reinterpret_cast<uintptr_t>(&key);
  if (e.graceful)
    p.graceful.insert({ms(e.gracefulAt), addr});
  else
    p.judged.insert({ms(e.judgedFrom), addr});
  (connectedNow(e) ? p.connected : p.disconnected).insert(&key);
}

void LiveIndex::addAll(std::vector<std::pair<const std::string*, Entry>> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return *a.first < *b.first; });
  for (const auto& [key, e] : entries) {
    auto& p = types_[slot(e.type)];
    ++p.deployed;
    (connectedNow(e) ? p.connected : p.disconnected).insert(key);
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second.judgedFrom, a.first) < std::pair(b.second.judgedFrom, b.first);
  });
  for (const auto& [key, e] : entries)
    if (!e.graceful)
      types_[slot(e.type)].judged.insert({ms(e.judgedFrom), reinterpret_cast<uintptr_t>(key)});
  for (const auto& [key, e] : entries)  // few, in practice
    if (e.graceful)
      types_[slot(e.type)].graceful.insert({ms(e.gracefulAt), reinterpret_cast<uintptr_t>(key)});
}

std::vector<std::string> LiveIndex::due(DefenderType t, TimePoint gracefulBy, TimePoint silentBy,
                                        size_t limit) const {
  std::vector<std::string> keys;
  const auto& p = types_[slot(t)];
  for (const ByJudged* tree : {&p.graceful, &p.judged}) {
    const long long bound = ms(tree == &p.graceful ? gracefulBy : silentBy);
    for (auto it = tree->begin(); it != tree->end() && keys.size() < limit && it->first <= bound;
         ++it)
      keys.push_back(*reinterpret_cast<const std::string*>(it->second));
  }
  return keys;
}

size_t LiveIndex::countDue(DefenderType t, TimePoint gracefulBy, TimePoint silentBy) const {
  const auto& p = types_[slot(t)];
  // Entries are (time, address) pairs: those with time ≤ bound rank below (bound + 1, 0).
  return p.graceful.order_of_key({ms(gracefulBy) + 1, 0}) +
         p.judged.order_of_key({ms(silentBy) + 1, 0});
}

void LiveIndex::remove(const std::string& key, const Entry& e) {
  auto& p = types_[slot(e.type)];
  --p.deployed;
  const auto addr = reinterpret_cast<uintptr_t>(&key);
  if (e.graceful)
    p.graceful.erase({ms(e.gracefulAt), addr});
  else
    p.judged.erase({ms(e.judgedFrom), addr});
  (connectedNow(e) ? p.connected : p.disconnected).erase(&key);
}

void LiveIndex::update(const std::string& key, const Entry& before, const Entry& after) {
  if (before.type != after.type) {
    remove(key, before);
    add(key, after);
    return;
  }
  auto& p = types_[slot(after.type)];
  const auto addr = reinterpret_cast<uintptr_t>(&key);
  if (before.graceful != after.graceful || before.judgedFrom != after.judgedFrom) {
    if (!before.graceful) p.judged.erase({ms(before.judgedFrom), addr});
    if (!after.graceful) p.judged.insert({ms(after.judgedFrom), addr});
  }
  if (before.graceful != after.graceful || before.gracefulAt != after.gracefulAt) {
    if (before.graceful) p.graceful.erase({ms(before.gracefulAt), addr});
    if (after.graceful) p.graceful.insert({ms(after.gracefulAt), addr});
  }
  const bool was = connectedNow(before), is = connectedNow(after);
  if (was == is) return;
  (was ? p.connected : p.disconnected).erase(&key);
  (is ? p.connected : p.disconnected).insert(&key);
}

void LiveIndex::advance(TimePoint cutoff) {
  const long long c = ms(cutoff);
  if (c == applied_) return;
  for (auto& p : types_) {
    // Entries with judgedFrom in [min, max) change sides.
    const long long lo = std::min(c, applied_), hi = std::max(c, applied_);
    auto it = p.judged.lower_bound({lo, 0});
    const auto end = p.judged.lower_bound({hi, 0});
    for (; it != end; ++it) {
      const auto* key = reinterpret_cast<const std::string*>(it->second);
      if (c > applied_) {
        p.connected.erase(key);
        p.disconnected.insert(key);
      } else {
        p.disconnected.erase(key);
        p.connected.insert(key);
      }
    }
  }
  applied_ = c;
}

size_t LiveIndex::deployed(DefenderType t) const {
  return types_[slot(t)].deployed;
}

size_t LiveIndex::connected(DefenderType t, TimePoint cutoff) const {
  const auto& j = types_[slot(t)].judged;
  return j.size() - j.order_of_key({ms(cutoff), 0});
}

std::vector<std::string> LiveIndex::page(DefenderType t, bool connected, bool reverse,
                                         size_t offset, size_t limit, size_t& total) const {
  const auto& set = connected ? types_[slot(t)].connected : types_[slot(t)].disconnected;
  total = set.size();
  std::vector<std::string> keys;
  if (offset >= total) return keys;
  const size_t n = std::min(limit, total - offset);
  keys.reserve(n);
  if (!reverse) {
    for (auto it = set.find_by_order(offset); keys.size() < n; ++it) keys.push_back(**it);
  } else {
    for (auto it = set.find_by_order(total - 1 - offset); keys.size() < n; --it)
      keys.push_back(**it);
  }
  return keys;
}

}  // namespace dc::inventory
