/* train_cmd.h - the trainer's commands of the `fewmul` CLI. */
#ifndef FM_TRAIN_CMD_H
#define FM_TRAIN_CMD_H
/* fewmul train ...: argv excludes "fewmul train". Returns the exit code. */
int fm_cmd_train(int argc, char **argv);
#endif
