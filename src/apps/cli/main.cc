#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"lowbit: quantize, export and run large language models"};
  CLI11_PARSE(app, argc, argv);
  return 0;
}
