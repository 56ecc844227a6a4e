/* Runs the generated model on the bundle's reference beats and latents and prints every output as the
 * hex of its IEEE-754 bits, so the comparison with onnxruntime is exact to the last bit. The same file
 * runs on the host (make test) and on the emulated Cortex-M4F (make mcu, with ECGAE_MCU defined), where it
 * also prints the SysTick ticks and the stack high-water mark of each call. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ecgae_model.h"
#include "ecgae_reference.h"

#ifdef ECGAE_MCU
#include "mcu.h"
#else
#define mcu_init()
#define mcu_ticks() 0UL
#define mcu_elapsed(start, end) ((void)(start), (void)(end), 0UL)
#define mcu_stack_paint()
#define mcu_stack_used() 0UL
#endif

static void put_floats(const char *tag, int row, const float *v, int n)
{
  printf("%s %d", tag, row);
  for (int i = 0; i < n; ++i) {
    uint32_t bits;
    memcpy(&bits, &v[i], sizeof bits);
    printf(" %08lx", (unsigned long)bits);
  }
  printf("\n");
}

static void put_double(const char *tag, int row, double v)
{
  uint32_t half[2];
  memcpy(half, &v, sizeof half);
  printf("%s %d %08lx%08lx\n", tag, row, (unsigned long)half[1], (unsigned long)half[0]);
}

static int fail(const char *what, int row, int rc)
{
  printf("error %s %d %d\n", what, row, rc);
  return 1;
}

int main(void)
{
  static float z[ECGAE_LATENT_DIM], z_score[ECGAE_LATENT_DIM], x_hat[ECGAE_INPUT_LENGTH];
  static float decoded[ECGAE_INPUT_LENGTH];
  double score;
  int rc;
  unsigned long t0, t1, t2, t3, stack_encode, stack_score;

  mcu_init();
  for (int row = 0; row < ECGAE_REF_BEATS; ++row) {
    mcu_stack_paint();
    t0 = mcu_ticks();
    rc = ecgae_encode(ecgae_ref_beats[row], z);
    t1 = mcu_ticks();
    stack_encode = mcu_stack_used();
    if (rc != ECGAE_OK) return fail("encode", row, rc);
    mcu_stack_paint();
    t2 = mcu_ticks();
    rc = ecgae_score(ecgae_ref_beats[row], &score, NULL, NULL);
    t3 = mcu_ticks();
    stack_score = mcu_stack_used();
    if (rc != ECGAE_OK) return fail("score", row, rc);
    printf("cost %d %lu %lu %lu %lu\n", row, mcu_elapsed(t0, t1), mcu_elapsed(t2, t3), stack_encode, stack_score);
    put_floats("z", row, z, ECGAE_LATENT_DIM);
    put_double("score", row, score);
    rc = ecgae_score(ecgae_ref_beats[row], &score, z_score, x_hat);
    if (rc != ECGAE_OK) return fail("score", row, rc);
    put_floats("score_z", row, z_score, ECGAE_LATENT_DIM);
    put_floats("x_hat", row, x_hat, ECGAE_INPUT_LENGTH);
  }
  for (int row = 0; row < ECGAE_REF_LATENTS; ++row) {
    rc = ecgae_decode(ecgae_ref_latents[row], decoded);
    if (rc != ECGAE_OK) return fail("decode", row, rc);
    put_floats("decode", row, decoded, ECGAE_INPUT_LENGTH);
  }
  printf("done\n");
  return 0;
}
