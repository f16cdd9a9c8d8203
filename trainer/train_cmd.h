/* train_cmd.h - the trainer's commands of the `fewmul` CLI. */
#ifndef FM_TRAIN_CMD_H
#define FM_TRAIN_CMD_H
/* fewmul train ...: argv excludes "fewmul train". Returns the exit code. */
int fm_cmd_train(int argc, char **argv);
/* fewmul eval model.onnx --data NAME ...: test accuracy of any exported model,
   compiled by fewmul. */
int fm_cmd_eval(int argc, char **argv);
#endif
