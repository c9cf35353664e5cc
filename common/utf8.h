// UTF-8 validation for text that arrives as raw bytes (query parameters, YAML scalars).
#pragma once

#include <string_view>

namespace dc {

/// True when `s` is well-formed UTF-8 (RFC 3629): no overlong forms, no UTF-16 surrogates
/// (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence. The empty string is valid.
bool isValidUtf8(std::string_view s);

/// True when valid UTF-8 `s` holds a Unicode noncharacter: U+FDD0..U+FDEF or the last two code
/// points of any plane (U+FFFE, U+FFFF, U+1FFFE, …). YAML excludes them from printable text, and
/// yaml-cpp's emitter writes U+FFFD in their place.
bool hasNoncharacter(std::string_view s);

}  // namespace dc
