// defender-embed: see cli.h.
#include <iostream>

#include "tools/defender_embed/cli.h"

int main(int argc, char** argv) {
  return dc::tools::runDefenderEmbed(argc, argv, {std::cout, std::cerr, {}});
}
