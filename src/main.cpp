#include "coordinator/app.hpp"

int main(int argc, char** argv) {
  return coordinator::main_entry(argc, argv);
}
