#include "app/cli.h"

int main(int argc, char** argv) { return medic::app::run_cli(argc, argv); }
